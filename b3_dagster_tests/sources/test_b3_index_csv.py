"""Any index's "Carteira do Dia" CSV: every shipped real download (IBRA, IBXX, IDIV, SMLL) parsed; the two copies
altered by their uploaders are refused unless asked for, and then say how they were altered."""

from __future__ import annotations

import datetime as dt
from importlib import resources
from pathlib import Path

import pytest

from b3_dagster.errors import B3CsvError
from b3_dagster.model import EVENT_FLAG, INDEX_CODE, INDEX_PORTFOLIO_COLUMNS, LISTING_SEGMENT, SHARE_CLASS
from b3_dagster.sources.b3_csv import parse_ibov_csv
from b3_dagster.sources.b3_index_csv import parse_index_csv, recorded_csvs, split_type

RECORDED = Path(str(resources.files("b3_dagster") / "recordings" / "b3_indices" / "csv"))
IBOV_CSV = Path(__file__).parents[1] / "fixtures" / "b3_csv" / "csv"
# file -> (index, date, rows, total theoretical quantity or None, tickers with an event flag)
AS_SERVED = {
    "IBRADia_22-06-21.csv": ("IBRA", "2021-06-22", 179, 101_889_008_898, 9),
    "IBRADia_24-06-21.csv": ("IBRA", "2021-06-24", 179, 101_889_008_898, 11),
    "IBRADia_01-07-21.csv": ("IBRA", "2021-07-01", 178, 102_547_598_423, 23),
    "IBRADia_08-07-25.csv": ("IBRA", "2025-07-08", 166, 108_273_317_064, 21),
    "IBXXDia_12-11-24.csv": ("IBXX", "2024-11-12", 100, 102_617_683_775, 10),
    "IBXXDia_20-06-25.csv": ("IBXX", "2025-06-20", 97, 97_512_712_042, 7),
}
ALTERED = {
    "IDIVDia_01-12-22.csv": ("IDIV", "2022-12-01", 52, 25_638_132_472, 0),
    "SMLLDia_02-07-25_EDITED.csv": ("SMLL", "2025-07-02", 114, None, 11),
}


def read(name: str) -> bytes:
    return (RECORDED / name).read_bytes()


def test_every_shipped_file_is_covered():
    assert {path.name for path in RECORDED.glob("*.csv")} == set(AS_SERVED) | set(ALTERED)
    assert [path.name for path in recorded_csvs()] == sorted(set(AS_SERVED) | set(ALTERED))


@pytest.mark.parametrize("name", sorted(AS_SERVED))
def test_every_download_as_b3_served_it_parses_strictly(name):
    index, date, rows, qty_total, flagged = AS_SERVED[name]
    parsed = parse_index_csv(read(name), name)
    assert (parsed.index, parsed.portfolio_date) == (index, dt.date.fromisoformat(date))
    assert list(parsed.rows.columns) == INDEX_PORTFOLIO_COLUMNS and len(parsed.rows) == rows
    assert set(parsed.rows[INDEX_CODE]) == {index} and parsed.alterations == ()
    assert parsed.theoretical_qty_total == qty_total == parsed.rows["theoricalQty"].sum()
    assert round(parsed.rows["part"].sum() * 1000) == 100_000
    assert parsed.reductor and parsed.reductor > 0
    assert parsed.rows[EVENT_FLAG].notna().sum() == flagged
    assert parsed.rows[SHARE_CLASS].notna().all()
    # the padded Tipo is kept as B3 wrote it (inner spaces), its parts are split
    assert all(value == value.strip() for value in parsed.rows["type"])


@pytest.mark.parametrize("name", sorted(ALTERED))
def test_an_altered_copy_is_refused_by_default_and_says_why(name):
    with pytest.raises(B3CsvError, match=r"not as B3 serves it: .*allow_altered=True"):
        parse_index_csv(read(name), name)


@pytest.mark.parametrize("name", sorted(ALTERED))
def test_an_altered_copy_parses_on_request_and_records_its_alterations(name):
    index, date, rows, qty_total, flagged = ALTERED[name]
    parsed = parse_index_csv(read(name), name, allow_altered=True)
    assert (parsed.index, parsed.portfolio_date, len(parsed.rows)) == (index, dt.date.fromisoformat(date), rows)
    assert parsed.theoretical_qty_total == qty_total
    assert round(parsed.rows["part"].sum() * 1000) == 100_000
    assert parsed.rows[EVENT_FLAG].notna().sum() == flagged
    assert "altered copy" in parsed.source


def test_the_spreadsheet_resave_of_idiv_lost_tipo_and_number_formatting():
    parsed = parse_index_csv(read("IDIVDia_01-12-22.csv"), "IDIVDia_01-12-22.csv", allow_altered=True)
    assert parsed.rows["type"].isna().all() and parsed.rows[SHARE_CLASS].isna().all()
    assert set(parsed.alterations) >= {"no 'Tipo' column (re-saved by a spreadsheet)",
                                       "numbers lost their thousands separators",
                                       "weights lost their trailing zeros (B3 writes 3 decimals)"}
    assert parsed.rows.iloc[0][["cod", "theoricalQty", "part"]].tolist() == ["ABCB4", 81_921_924, 0.33]
    assert parsed.reductor == 67_069_065.6583953
    assert parsed.theoretical_qty_total == parsed.rows["theoricalQty"].sum()


def test_the_hand_edited_smll_takes_its_index_and_date_from_the_file_name():
    parsed = parse_index_csv(read("SMLLDia_02-07-25_EDITED.csv"), "SMLLDia_02-07-25_EDITED.csv", allow_altered=True)
    assert "no title line: index and date taken from the file name" in parsed.alterations
    assert "no 'Quantidade Teórica Total' and 'Redutor' footers" in parsed.alterations
    assert parsed.reductor is None and parsed.lines["TTEN3"] == 2


@pytest.mark.parametrize(("tipo", "parts"), [
    ("ON      NM", ("ON", None, "NM")), ("PN  EJ  N2", ("PN", "EJ", "N2")), ("ON  EDJ NM", ("ON", "EDJ", "NM")),
    ("UNT EB N2", ("UNT", "EB", "N2")), ("ON", ("ON", None, None)), ("ON  ATZ", ("ON", "ATZ", None)),
    ("PNB     N1", ("PNB", None, "N1")), (None, (None, None, None)),
])
def test_tipo_splits_into_class_event_and_segment(tipo, parts):
    assert split_type(tipo) == parts


def test_event_flags_seen_in_ibxx_are_stripped_from_the_class():
    parsed = parse_index_csv(read("IBXXDia_20-06-25.csv"), "IBXXDia_20-06-25.csv")
    allos = parsed.rows.set_index("cod").loc["ALOS3"]
    assert (allos["type"], allos[SHARE_CLASS], allos[EVENT_FLAG], allos[LISTING_SEGMENT]) == (
        "ON  ED  NM", "ON", "ED", "NM")


def test_an_ibov_download_gives_the_same_rows_as_the_ibov_parser():
    path = sorted(IBOV_CSV.glob("IBOVDia_*.csv"))[0]
    generic = parse_index_csv(path.read_bytes(), path.name)
    ibov = parse_ibov_csv(path.read_bytes(), path.name)
    assert generic.index == "IBOV" and generic.portfolio_date == ibov.portfolio_date
    assert generic.rows["cod"].tolist() == ibov.rows["cod"].tolist()
    assert generic.rows["part"].tolist() == ibov.rows["part"].tolist()
    assert generic.rows["theoricalQty"].tolist() == ibov.rows["theoricalQty"].tolist()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda data: data.replace(b"0,201;", b"0,301;", 1), r"line \d+.*Part. \(%\) add up to 100.100"),
        (lambda data: data.replace(b"129.507.288", b"129.507.289", 1), r"Qtde. Te.rica add up to"),
        (lambda data: data.replace(b"RRRP3;", b"RRRP;", 1), r"line 3: column 'C.digo': 'RRRP'"),
        (lambda data: data.replace(b"01/07/21", b"04/07/21", 1), r"line 1: .*2021-07-04 \(Sunday\)"),
        (lambda data: data.split(b"Quantidade")[0], r"not as B3 serves it: .*no 'Quantidade"),
    ],
)
def test_a_damaged_download_is_refused_naming_the_line(change, message):
    with pytest.raises(B3CsvError, match=message):
        parse_index_csv(change(read("IBRADia_01-07-21.csv")), "IBRADia_01-07-21.csv")
