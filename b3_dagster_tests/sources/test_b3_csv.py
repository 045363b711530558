"""The Carteira do Dia CSV parser on every real file we have, and on real files broken on purpose."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pandas as pd
import pytest

from b3_dagster.calendar import is_session
from b3_dagster.errors import B3CsvError
from b3_dagster.model import RAW_COLUMNS, PortfolioSnapshot
from b3_dagster.sources.b3_csv import parse_ibov_csv, read_file

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "b3_csv"
STANDARD_FILES = sorted((FIXTURES / "csv").glob("IBOVDia_*.csv"))
SECTOR_FILES = sorted((FIXTURES / "csv_sector").glob("IBOVDia_*.csv"))
ALL_FILES = STANDARD_FILES + SECTOR_FILES
CRLF_FILE = FIXTURES / "csv" / "IBOVDia_06-01-25.csv"
LF_FILE = FIXTURES / "csv" / "IBOVDia_16-03-26.csv"
SECTOR_FILE = FIXTURES / "csv_sector" / "IBOVDia_10-07-24.csv"


def test_every_real_file_is_present():
    assert len(STANDARD_FILES) == 20 and len(SECTOR_FILES) == 3


def independent_read(data: bytes) -> pd.DataFrame:
    """The same rows read another way: pandas with the options the quirks call for (latin-1, no index column from
    the trailing ';', title and two footers skipped). Used as an oracle for the strict parser."""
    return pd.read_csv(io.BytesIO(data), sep=";", encoding="latin-1", skiprows=1, skipfooter=2, engine="python",
                       index_col=False, dtype=str, keep_default_na=False)


def pt_br(text: str) -> float:
    return float(text.replace(".", "").replace(",", "."))


def lines_of(data: bytes) -> list[bytes]:
    return data.splitlines()


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_real_file_parses_like_the_independent_reader(path):
    data = path.read_bytes()
    parsed = parse_ibov_csv(data, path.name)
    oracle = independent_read(data)
    title_date = dt.datetime.strptime(lines_of(data)[0].decode("latin-1").rsplit(" ", 1)[1], "%d/%m/%y").date()

    assert parsed.portfolio_date == title_date and is_session(title_date)
    assert parsed.has_sectors == (path.parent.name == "csv_sector")
    assert list(parsed.rows.columns) == RAW_COLUMNS
    assert list(parsed.rows["cod"]) == list(oracle["Código"])
    assert list(parsed.rows["asset"]) == list(oracle["Ação"].str.strip())
    assert list(parsed.rows["type"]) == list(oracle["Tipo"].str.strip())
    assert list(parsed.rows["theoricalQty"]) == [int(pt_br(value)) for value in oracle["Qtde. Teórica"]]
    assert list(parsed.rows["part"]) == [pt_br(value) for value in oracle["Part. (%)"]]
    assert set(parsed.rows["DataCarteira"]) == {title_date}
    footer = lines_of(data)[-2].decode("latin-1").split(";")
    assert parsed.theoretical_qty_total == int(pt_br(footer[-3 if parsed.has_sectors else -2]))
    assert parsed.reductor == pt_br(lines_of(data)[-1].decode("latin-1").split(";")[-1])
    assert parsed.warnings == ()
    assert parsed.lines == {cod: position + 3 for position, cod in enumerate(oracle["Código"])}
    if parsed.has_sectors:
        assert list(parsed.rows["segment"]) == list(oracle["Setor"].str.strip())
        assert list(parsed.rows["partAcum"]) == [pt_br(value) for value in oracle["Part. (%)Acum."]]
        # typed exactly as the raw layer (the API path builds the same snapshot)
        snapshot = PortfolioSnapshot(parsed.portfolio_date, parsed.rows, parsed.reductor, parsed.theoretical_qty_total)
        assert snapshot.to_arrow().num_rows == len(oracle)
    else:
        assert parsed.rows["segment"].isna().all() and parsed.rows["partAcum"].isna().all()


def test_padded_tipo_is_stripped_but_keeps_its_inner_spaces():
    parsed = parse_ibov_csv(SECTOR_FILE.read_bytes(), SECTOR_FILE.name)
    raw_types = independent_read(SECTOR_FILE.read_bytes())["Tipo"]
    assert any(value != value.strip() for value in raw_types) or any("  " in value for value in raw_types)
    assert all(value == value.strip() for value in parsed.rows["type"])
    assert any("  " in value for value in parsed.rows["type"])  # "ON      NM": class, event marker, level


@pytest.mark.parametrize("path, convert", [(CRLF_FILE, lambda d: d.replace(b"\r\n", b"\n")),
                                           (LF_FILE, lambda d: d.replace(b"\n", b"\r\n")),
                                           (CRLF_FILE, lambda d: d.replace(b"\r\n", b"\r")),
                                           (SECTOR_FILE, lambda d: d.replace(b"\r\n", b"\n").replace(b"\n", b"\r"))],
                         ids=["crlf-to-lf", "lf-to-crlf", "crlf-to-cr", "sector-to-cr"])
def test_line_endings_do_not_matter(path, convert):
    original = path.read_bytes()
    converted = convert(original)
    assert converted != original
    first, second = parse_ibov_csv(original, path.name), parse_ibov_csv(converted, path.name)
    assert first.rows.equals(second.rows) and first.reductor == second.reductor


def test_the_date_comes_from_the_title_not_the_file_name():
    parsed = parse_ibov_csv(LF_FILE.read_bytes(), "IBOVDia_01-01-20.csv")
    assert parsed.portfolio_date == dt.date(2026, 3, 16)
    assert parsed.warnings == ("IBOVDia_01-01-20.csv: the file name says 2020-01-01 but the title line says "
                               "2026-03-16; imported under the title's date 2026-03-16 (rename the file, or check "
                               "that it is the download you meant)",)


@pytest.mark.parametrize("name", ["IBOVDia_16-03-26.csv", "IBOVDia_16-03-26 (1).csv", "carteira.csv"])
def test_a_file_name_that_agrees_or_has_no_date_gives_no_warning(name):
    assert parse_ibov_csv(LF_FILE.read_bytes(), name).warnings == ()


def test_a_file_larger_than_the_cap_is_refused_unread(tmp_path):
    big = tmp_path / "IBOVDia_16-03-26.csv"
    big.write_bytes(LF_FILE.read_bytes() + b" " * 5000)
    with pytest.raises(B3CsvError, match=r"is larger than 4,096 bytes \(a Carteira do Dia file is about 8 KB\)"):
        read_file(big, max_bytes=4096)
    assert read_file(LF_FILE) == LF_FILE.read_bytes()


@pytest.mark.parametrize(("column", "value", "shown"),
                         [(3, b"-234.689.601", "-234689601"), (3, b"0", "0"), (4, b"0,000", "0.0")],
                         ids=["negative-quantity", "zero-quantity", "zero-weight"])
def test_a_position_of_zero_or_less_is_refused_naming_the_ticker(column, value, shown):
    data = LF_FILE.read_bytes()
    fields = line(data, 10).split(b";")
    ticker = fields[0].decode()
    fields[column] = value
    name = ["Qtde. Teórica", "Part. (%)"][column - 3]
    assert_error(replace_line(data, 10, b";".join(fields)), LF_FILE.name, 10,
                 f"column {name!r} of {ticker} is {shown}; it must be greater than 0")


# ---- fault cases: real files broken on purpose ------------------------------------------------------------------
def replace_line(data: bytes, number: int, new: bytes) -> bytes:
    lines = data.split(b"\n")
    lines[number - 1] = new
    return b"\n".join(lines)


def line(data: bytes, number: int) -> bytes:
    return data.split(b"\n")[number - 1].rstrip(b"\r")


def assert_error(data: bytes, name: str, line_number: int | None, *words: str) -> B3CsvError:
    with pytest.raises(B3CsvError) as caught:
        parse_ibov_csv(data, name)
    error = caught.value
    assert error.file == name and name in str(error)
    assert error.line == line_number and (line_number is None or f"line {line_number}" in str(error))
    for word in words:
        assert word in str(error)
    return error


@pytest.mark.parametrize("path", [CRLF_FILE, LF_FILE, SECTOR_FILE], ids=lambda path: path.name)
def test_truncated_in_the_middle_of_a_row(path):
    data = path.read_bytes()
    cut = data[: len(data) // 2]
    assert_error(cut, path.name, len(cut.splitlines()), "truncated")


@pytest.mark.parametrize("path", [CRLF_FILE, SECTOR_FILE], ids=lambda path: path.name)
def test_truncated_before_the_footers(path):
    data = path.read_bytes()
    kept = b"".join(data.splitlines(keepends=True)[:-2])
    assert_error(kept, path.name, len(kept.splitlines()), "Quantidade Teórica Total", "truncated")


def test_missing_reductor_footer():
    data = CRLF_FILE.read_bytes()
    kept = b"".join(data.splitlines(keepends=True)[:-1])
    assert_error(kept, CRLF_FILE.name, len(kept.splitlines()) + 1, "Redutor")


def test_missing_total_footer():
    data = LF_FILE.read_bytes()
    lines = data.splitlines(keepends=True)
    without_total = b"".join(lines[:-2] + lines[-1:])
    assert_error(without_total, LF_FILE.name, len(lines) - 1, "Quantidade Teórica Total", "missing")


@pytest.mark.parametrize("column, bad", [(3, b"466.135.79X"), (3, b"1.2345"), (4, b"0.522"), (4, b"")],
                         ids=["letter-in-qty", "bad-grouping", "en-us-decimal", "empty-part"])
def test_a_row_with_a_bad_number(column, bad):
    data = LF_FILE.read_bytes()
    fields = line(data, 10).split(b";")
    fields[column] = bad
    assert_error(replace_line(data, 10, b";".join(fields)), LF_FILE.name, 10,
                 ["Qtde. Teórica", "Part. (%)"][column - 3])


def test_a_row_without_its_trailing_separator():
    data = CRLF_FILE.read_bytes()
    assert_error(replace_line(data, 7, line(data, 7)[:-1] + b"\r"), CRLF_FILE.name, 7, "fields")


def test_a_row_with_an_extra_column():
    data = SECTOR_FILE.read_bytes()
    assert_error(replace_line(data, 5, line(data, 5) + b"1,000;\r"), SECTOR_FILE.name, 5, "fields")


@pytest.mark.parametrize("header", [
    "Código;Ação;Tipo;Quantidade;Part. (%)",
    "Código;Ação;Tipo;Qtde. Teórica;Part. (%);Setor",
    "Setor;Código;Ação;Tipo;Qtde. Teórica;Part. (%)",
], ids=["renamed-column", "added-column", "sector-without-acum"])
def test_a_changed_header(header):
    data = LF_FILE.read_bytes()
    assert_error(replace_line(data, 2, header.encode("latin-1")), LF_FILE.name, 2, "unexpected header")


def test_a_utf8_re_encoded_file_is_named_as_such():
    data = LF_FILE.read_bytes().decode("latin-1").encode("utf-8")
    assert_error(data, LF_FILE.name, 2, "UTF-8")


def test_another_index_is_refused():
    data = LF_FILE.read_bytes()
    assert_error(replace_line(data, 1, line(data, 1).replace(b"IBOV", b"IBXX")), LF_FILE.name, 1, "IBOV")


@pytest.mark.parametrize("title_date", ["20/11/25", "24/12/25", "15/03/26"], ids=["holiday", "christmas-eve",
                                                                                 "sunday"])
def test_a_date_that_is_not_a_session(title_date):
    assert not is_session(dt.datetime.strptime(title_date, "%d/%m/%y").date())
    data = LF_FILE.read_bytes()
    assert_error(replace_line(data, 1, f"IBOV - Carteira do Dia {title_date}".encode()), LF_FILE.name, 1,
                 "not a B3 session")


def test_an_impossible_date():
    data = LF_FILE.read_bytes()
    assert_error(replace_line(data, 1, b"IBOV - Carteira do Dia 31/02/26"), LF_FILE.name, 1, "date")


def total_line_number(data: bytes) -> int:
    return len(data.splitlines()) - 1


def test_weights_that_do_not_add_up_to_100():
    data = CRLF_FILE.read_bytes()
    fields = line(data, 8).split(b";")
    fields[4] = f"{pt_br(fields[4].decode()) + 0.001:.3f}".replace(".", ",").encode()
    broken = replace_line(data, 8, b";".join(fields) + b"\r")
    assert_error(broken, CRLF_FILE.name, total_line_number(data), "Part. (%)", "100.000")


def test_quantities_that_do_not_add_up_to_the_footer_total():
    data = CRLF_FILE.read_bytes()
    fields = line(data, 8).split(b";")
    fields[3] = f"{int(pt_br(fields[3].decode())) + 1:,}".replace(",", ".").encode()
    broken = replace_line(data, 8, b";".join(fields) + b"\r")
    assert_error(broken, CRLF_FILE.name, total_line_number(data), "Qtde. Teórica")


def test_a_dropped_row_breaks_the_sums():
    data = LF_FILE.read_bytes()
    lines = data.splitlines(keepends=True)
    dropped = b"".join(lines[:20] + lines[21:])
    assert_error(dropped, LF_FILE.name, total_line_number(dropped), "footer")


def test_a_sector_subtotal_that_disagrees_with_its_rows():
    data = SECTOR_FILE.read_bytes()
    fields = line(data, 3).split(b";")
    fields[6] = b"9,999"
    assert_error(replace_line(data, 3, b";".join(fields) + b"\r"), SECTOR_FILE.name, 3, "Part. (%)Acum.")


def test_a_repeated_ticker_names_both_lines():
    data = LF_FILE.read_bytes()
    lines = data.splitlines(keepends=True)
    repeated = b"".join(lines[:11] + [lines[4]] + lines[11:])
    error = assert_error(repeated, LF_FILE.name, 12, "line 5")
    assert line(data, 5).split(b";")[0].decode() in str(error)


def test_a_blank_line_inside_the_rows():
    data = CRLF_FILE.read_bytes()
    lines = data.splitlines(keepends=True)
    assert_error(b"".join(lines[:9] + [b"\r\n"] + lines[9:]), CRLF_FILE.name, 10, "blank")


def test_content_after_the_reductor():
    data = LF_FILE.read_bytes()
    assert_error(data + b"IBOV - Carteira do Dia 24/03/26\n", LF_FILE.name, len(data.splitlines()) + 1,
                 "after the 'Redutor'")


@pytest.mark.parametrize("data, line_number", [(b"", None), (b"\xef\xbb\xbf" + LF_FILE.read_bytes(), 1)],
                         ids=["empty", "utf8-bom"])
def test_empty_or_bom(data, line_number):
    assert_error(data, "x.csv", line_number)


@pytest.mark.parametrize("bad_reductor", [b"Redutor;;;18.296.803,376.775.73", b"Redutor;;;", b"Redutor"],
                         ids=["misgrouped", "empty", "no-fields"])
def test_a_malformed_reductor_is_a_warning_and_null(bad_reductor):
    data = LF_FILE.read_bytes()
    lines = data.splitlines(keepends=True)
    broken = b"".join(lines[:-1]) + bad_reductor + b"\n"
    parsed = parse_ibov_csv(broken, LF_FILE.name)
    reference = parse_ibov_csv(data, LF_FILE.name)
    assert parsed.reductor is None and reference.reductor is not None
    assert parsed.rows.equals(reference.rows)
    assert len(parsed.warnings) == 1 and f"line {len(lines)}" in parsed.warnings[0]
    assert LF_FILE.name in parsed.warnings[0]
