"""The refine step on real recorded portfolios, checked against an independent pandas computation."""

import datetime as dt

import pandas as pd
import pytest
import sqlglot

from b3_dagster.model import REFINED_COLUMNS
from b3_dagster.sources.b3_portfolio import parse_page, rows_to_frame
from b3_dagster.transforms.sector_refine import refine_portfolio, refine_sql, shipped_sector_mapping


def raw_rows(recording) -> pd.DataFrame:
    return rows_to_frame(parse_page(recording.path.read_bytes(), page=1, language=recording.language).rows)


@pytest.fixture(params=["2022-12-08", "2025-04-07"])
def raw(request, recordings):
    return raw_rows(recordings[request.param])


def test_aggregates_by_sector_and_date(raw):
    processing = dt.date(2025, 5, 2)
    refined = refine_portfolio(raw, processing)

    canonical = raw.merge(shipped_sector_mapping(raw), on=["DataCarteira", "cod"], how="inner")
    assert len(canonical) == len(raw), "every recorded ticker is placed"
    expected = canonical.groupby(["Setor", "DataCarteira"]).agg(
        soma_part=("part", "sum"), total_codigo=("cod", "count"), soma_qtd_teorica=("theoricalQty", "sum"))
    assert list(refined.columns) == REFINED_COLUMNS
    assert len(refined) == len(expected) == canonical["Setor"].nunique()
    merged = refined.set_index(["Setor", "Data"]).join(
        expected.rename_axis(["Setor", "Data"]).add_suffix("_pandas"))
    assert (merged["soma_part"] - merged["soma_part_pandas"]).abs().max() < 1e-9
    assert (merged["total_codigo"] == merged["total_codigo_pandas"]).all()
    assert (merged["soma_qtd_teorica"] == merged["soma_qtd_teorica_pandas"]).all()
    assert refined["total_codigo"].sum() == len(raw)


def test_date_calculation_is_reproducible(raw):
    processing = dt.date(2026, 1, 2)
    refined = refine_portfolio(raw, processing)
    portfolio_day = raw["DataCarteira"].iloc[0]
    assert set(refined["data_processamento"]) == {processing}
    assert set(refined["dias_desde_carteira"]) == {(processing - portfolio_day).days}
    assert refine_portfolio(raw, processing).equals(refined)


def test_sums_of_three_decimal_weights_are_exact(raw):
    refined = refine_portfolio(raw, dt.date(2025, 1, 1))
    # DECIMAL arithmetic: every sector total is a whole number of thousandths, with no float residue.
    assert all(abs(value * 1000 - round(value * 1000)) < 1e-6 for value in refined["soma_part"])


def test_several_days_in_one_call(recordings):
    both = pd.concat([raw_rows(r) for r in recordings.values()], ignore_index=True)
    refined = refine_portfolio(both, dt.date(2025, 6, 1))
    assert set(refined["Data"]) == {dt.date(2022, 12, 8), dt.date(2025, 4, 7)}
    assert refined.groupby("Data")["total_codigo"].sum().to_dict() == both.groupby("DataCarteira").size().to_dict()


def test_missing_raw_column_is_an_error(raw):
    with pytest.raises(ValueError, match="theoricalQty"):
        refine_portfolio(raw.drop(columns=["theoricalQty"]), dt.date(2025, 1, 1))


@pytest.mark.parametrize("dialect", ["duckdb", "spark"])
def test_the_one_refine_statement_renders_for_each_engine(dialect):
    sql = refine_sql(dt.date(2025, 4, 8), dialect)
    parsed = sqlglot.parse_one(sql, read=dialect)
    assert [select.alias_or_name for select in parsed.selects] == REFINED_COLUMNS
    assert "2025-04-08" in sql


def test_setor_is_the_canonical_label_not_b3s_text(recordings):
    """The 2022 answer lost its accents (U+FFFD) and the 2025 one is in en-us abbreviations: both give the same
    canonical labels, with setor_economico and subsetor beside them."""
    both = pd.concat([raw_rows(r) for r in recordings.values()], ignore_index=True)
    refined = refine_portfolio(both, dt.date(2025, 6, 1))
    assert not refined["Setor"].str.contains("\ufffd").any()
    assert refined["setor_economico"].notna().all() and refined["subsetor"].notna().all()
    assert (refined["Setor"] == [s if s == b else f"{s} / {b}" for s, b in
                                 zip(refined["setor_economico"], refined["subsetor"])]).all()
    assert "Materiais Básicos / Mineração" in set(refined.loc[refined["Data"] == dt.date(2022, 12, 8), "Setor"])
    by_day = refined.groupby("Data")["Setor"].apply(set)
    assert len(by_day.iloc[0] & by_day.iloc[1]) >= 20, "the two sources' sectors line up"


def test_a_ticker_the_mapping_lacks_is_left_out_not_invented(raw):
    mapping = shipped_sector_mapping(raw)
    dropped = mapping["cod"].iloc[0]
    refined = refine_portfolio(raw, dt.date(2025, 6, 1), mapping[mapping["cod"] != dropped])
    assert refined["total_codigo"].sum() == len(raw) - 1
    assert set(refined["Setor"]) <= set(mapping["Setor"])
