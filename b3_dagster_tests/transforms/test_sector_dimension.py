"""The canonical sector dimension: B3's labels placed through their tickers, against the shipped real vintages."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from b3_dagster.errors import UnplacedSectors
from b3_dagster.model import RAW_COLUMNS, SECTOR_MAPPING_COLUMNS
from b3_dagster.sources.b3_classification import load_shipped_classification
from b3_dagster.sources.b3_csv import parse_ibov_csv
from b3_dagster.sources.b3_portfolio import parse_page, rows_to_frame
from b3_dagster.transforms.sector_dimension import (
    FALLBACK,
    NEAREST,
    VALID,
    SectorDimension,
    canonical_rows,
    map_sectors,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "b3_csv"


@pytest.fixture(scope="module")
def classification() -> pd.DataFrame:
    return load_shipped_classification()


@pytest.fixture(scope="module")
def dimension(classification) -> SectorDimension:
    return SectorDimension.from_classification(classification)


@pytest.fixture
def b3_labelled(recordings) -> pd.DataFrame:
    """Every real source that carries B3's own labels: the by-sector CSVs and the two API answers (pt-br with
    U+FFFD damage, en-us)."""
    frames = [parse_ibov_csv(path.read_bytes(), path.name).rows for path in sorted((FIXTURES / "csv_sector").glob("*.csv"))]
    for recording in recordings.values():
        page = parse_page(recording.path.read_bytes(), page=1, language=recording.language)
        frames.append(rows_to_frame(page.rows))
    return pd.concat(frames, ignore_index=True)


def test_renames_are_found_from_the_issuers_and_labelled_with_the_earliest_name(dimension):
    found = {(day.isoformat(), old[1], new[1]) for day, old, new in dimension.renames}
    assert found == {
        ("2023-08-30", "Comércio", "Comércio Varejista"),  # Consumo Cíclico
        ("2023-08-30", "Produtos de Uso Pessoal e de Limpeza", "Produtos de Cuidado Pessoal e de Limpeza"),
        ("2025-10-31", "Comércio", "Comércio Varejista"),  # Bens Industriais
        ("2025-10-31", "Serviços Diversos", "Serviços"),
        ("2025-10-31", "Serviços Médico - Hospitalares, Análises e Diagnósticos",
         "Serv.Méd.Hospit.,Análises e Diagnósticos"),
    }
    canonical = dimension.canonical_of
    assert canonical[("Consumo Cíclico", "Comércio Varejista")] == ("Consumo Cíclico", "Comércio")
    assert canonical[("Saúde", "Serv.Méd.Hospit.,Análises e Diagnósticos")] == (
        "Saúde", "Serviços Médico - Hospitalares, Análises e Diagnósticos")
    assert canonical[("Materiais Básicos", "Mineração")] == ("Materiais Básicos", "Mineração")
    assert set(dimension.canonical_pairs()) == set(canonical.values())
    assert len(canonical) == len(dimension.canonical_pairs()) + 5  # five names folded into earlier ones
    assert len({setor for setor, _ in canonical.values()}) == 11


def test_a_later_vintage_that_renames_a_subsector_leaves_published_labels_alone(classification, dimension):
    """Hand-made vintage: the 2025-10-31 rows, re-dated 2026-12-01, with 'Mineração' renamed 'Mineração e Metais'."""
    latest = classification[classification["vigente_desde"] == dt.date(2025, 10, 31)].copy()
    latest["vigente_desde"] = dt.date(2026, 12, 1)
    latest["source_file"] = "hand-made rename"
    latest.loc[latest["subsetor"] == "Mineração", "subsetor"] = "Mineração e Metais"
    grown = SectorDimension.from_classification(pd.concat([classification, latest], ignore_index=True))
    assert grown.canonical_of[("Materiais Básicos", "Mineração e Metais")] == ("Materiais Básicos", "Mineração")
    assert {pair: grown.canonical_of[pair] for pair in dimension.canonical_of} == dimension.canonical_of
    placed = grown.place_root("VALE", dt.date(2027, 1, 4))
    assert placed.pair == ("Materiais Básicos", "Mineração e Metais") and placed.label == "Materiais Básicos / Mineração"


def test_the_vintage_valid_on_a_day(dimension):
    assert dimension.valid_vintage(dt.date(2020, 1, 2)) == dt.date(2021, 6, 25)  # before any: the earliest
    assert dimension.valid_vintage(dt.date(2023, 8, 30)) == dt.date(2023, 8, 30)  # effective on its own date
    assert dimension.valid_vintage(dt.date(2023, 8, 29)) == dt.date(2022, 6, 24)
    assert dimension.valid_vintage(dt.date(2027, 1, 4)) == dt.date(2025, 10, 31)  # the fallback-only is never valid


def test_a_root_is_placed_by_the_valid_then_the_nearest_then_the_fallback_vintage(dimension):
    day = dt.date(2023, 12, 15)
    assert dimension.place_root("PETR", day).how == VALID
    allos = dimension.place_root("ALOS", day)  # listed as ALOS from the 2024-05 vintage (ALSO before)
    assert (allos.how, allos.vintage) == (NEAREST, dt.date(2024, 5, 14))
    sbfg = dimension.place_root("SBFG", dt.date(2021, 6, 22))  # absent from all three 2021 vintages
    assert (sbfg.how, sbfg.vintage) == (NEAREST, dt.date(2022, 6, 24))
    axia = dimension.place_root("AXIA", dt.date(2026, 3, 16))
    assert (axia.how, axia.pair, axia.source_file[:6]) == (FALLBACK, ("Utilidade Pública", "Energia Elétrica"), "feoff0")
    assert dimension.place_root("ZZZZ", day) is None


def test_every_b3_label_maps_to_one_canonical_subsector(dimension, b3_labelled):
    mapping = map_sectors(b3_labelled, dimension)
    assert mapping.problems == () and mapping.notes == ()
    assert len(mapping.rows) == len(b3_labelled) and list(mapping.rows.columns) == SECTOR_MAPPING_COLUMNS
    labels = mapping.labels.set_index("segment")["Setor"].to_dict()
    same = [("Mats Básicos / Mineração", "Mats B\ufffdsicos / Minera\ufffd\ufffdo"),
            ("Petróleo, Gás e Biocombustíveis", "Petróleo/ Gás e Biocombustíveis"),
            ("Cons N  Básico / Alimentos Processados", "Cons N  B\ufffdsico / Alimentos Processados")]
    for left, right in same:
        assert labels[left] == labels[right], (left, right)
    assert labels["Diversos"] == "Consumo Cíclico / Diversos"
    assert labels["Telecomunicação"] == "Comunicações / Telecomunicações"
    assert labels["Financ e Outros / Previd  Seguros"] == "Financeiro / Previdência e Seguros"
    assert not mapping.rows["Setor"].str.contains("\ufffd").any()
    per_day = mapping.labels.groupby("DataCarteira").agg(labels=("segment", "nunique"), sectors=("Setor", "nunique"))
    assert (per_day["labels"] == per_day["sectors"]).all()  # one day's labels never merge: B3 keeps subsectors apart
    assert mapping.to_arrow().num_rows == len(b3_labelled)


def test_the_refine_can_join_the_mapping_in_sql(dimension, b3_labelled):
    """What the refine SQL does with the mapping: join on (DataCarteira, cod), group by the canonical Setor."""
    mapping = map_sectors(b3_labelled, dimension)
    with duckdb.connect() as connection:
        connection.register("raw_portfolio", b3_labelled[RAW_COLUMNS])
        connection.register("sector_mapping", mapping.rows)
        by_sector = connection.sql("""
            SELECT m.Setor, r.DataCarteira AS Data, SUM(CAST(r.part AS DECIMAL(12, 3))) AS soma_part
            FROM raw_portfolio r JOIN sector_mapping m ON r.DataCarteira = m.DataCarteira AND r.cod = m.cod
            GROUP BY m.Setor, r.DataCarteira""").df()
    assert len(by_sector) == b3_labelled.groupby(["DataCarteira", "segment"]).ngroups
    assert (by_sector.groupby("Data")["soma_part"].sum().astype(float).round(3) == 100.0).all()
    across_days = by_sector.groupby("Setor")["Data"].nunique()
    assert across_days.max() == 5 and by_sector["Setor"].nunique() <= len(dimension.canonical_pairs())


def raw_rows(day: dt.date, rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"segment": segment, "cod": cod, "asset": cod, "type": "ON", "part": part, "partAcum": None,
                          "theoricalQty": 1, "DataCarteira": day} for segment, cod, part in rows])


def test_a_label_none_of_whose_tickers_is_known_is_reported_never_invented(dimension):
    """Hand-made rows: a label holding only an unknown root."""
    day = dt.date(2025, 4, 7)
    raw = raw_rows(day, [("Mats Básicos / Mineração", "VALE3", 60.0), ("Novo Setor", "ZZZZ3", 40.0)])
    mapping = map_sectors(raw, dimension)
    assert len(mapping.rows) == 1 and set(mapping.rows["cod"]) == {"VALE3"}
    assert any("2025-04-07: label 'Novo Setor' cannot be placed" in problem and "ZZZZ3" in problem
               for problem in mapping.problems)
    with pytest.raises(UnplacedSectors, match="Novo Setor"):
        canonical_rows(raw, dimension)
    lenient = canonical_rows(raw, dimension, strict=False)
    assert pd.isna(lenient.set_index("cod").loc["ZZZZ3", "Setor"]) and len(lenient) == 2


def test_an_unknown_ticker_in_a_placed_label_is_reported_but_its_row_follows_the_label(dimension):
    day = dt.date(2025, 4, 7)
    raw = raw_rows(day, [("Mats Básicos / Mineração", "VALE3", 60.0), ("Mats Básicos / Mineração", "ZZZZ3", 40.0)])
    mapping = map_sectors(raw, dimension)
    assert set(mapping.rows["Setor"]) == {"Materiais Básicos / Mineração"} and len(mapping.rows) == 2
    assert mapping.problems == ("2025-04-07: ticker ZZZZ3 (root ZZZZ, label 'Mats Básicos / Mineração') is in no "
                                "classification vintage; add a vintage that lists it",)


def test_a_label_spanning_two_subsectors_takes_the_majority_and_says_so(dimension):
    day = dt.date(2025, 4, 7)
    raw = raw_rows(day, [("Misturado", "VALE3", 10.0), ("Misturado", "CMIN3", 1.0), ("Misturado", "PETR4", 5.0)])
    mapping = map_sectors(raw, dimension)
    assert set(mapping.rows["Setor"]) == {"Materiais Básicos / Mineração"}
    assert len(mapping.notes) == 1 and "'Misturado' holds tickers of 2 subsectors" in mapping.notes[0]


def test_canonical_rows_adds_the_three_columns(dimension, b3_labelled):
    rows = canonical_rows(b3_labelled, dimension)
    assert list(rows.columns) == RAW_COLUMNS + ["setor_economico", "subsetor", "Setor"]
    assert rows["Setor"].notna().all() and len(rows) == len(b3_labelled)
    same = rows["setor_economico"] == rows["subsetor"]
    other = rows[~same]
    assert (other["Setor"] == other["setor_economico"] + " / " + other["subsetor"]).all()
    assert set(rows.loc[same, "Setor"]) == {"Petróleo, Gás e Biocombustíveis"}  # B3 names the subsector as the sector
    assert rows.groupby("Setor")[["setor_economico", "subsetor"]].nunique().max().max() == 1
