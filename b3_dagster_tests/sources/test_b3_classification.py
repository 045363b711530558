"""B3's sector classification workbooks: every shipped real vintage parses, and faults name file, sheet and row."""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from pathlib import Path

import pyarrow as pa
import pytest
from openpyxl import load_workbook

from b3_dagster.errors import ClassificationError
from b3_dagster.model import CLASSIFICATION_COLUMNS, CLASSIFICATION_SCHEMA
from b3_dagster.sources.b3_classification import (
    DERIVED,
    LEGACY,
    NEW,
    SHIPPED_ROOT,
    classification_history,
    download_url,
    is_new_vintage,
    fetch_classification,
    load_shipped_classification,
    parse_classification,
    shipped_files,
    vintage_from_name,
)

# Listings per file, as counted in ../shared/data/b3_sectors/SOURCES.md (and recordings/b3_sectors/SOURCES.md).
EXPECTED = {
    "ClassifSetorial_2021-06-25.xlsx": (LEGACY, dt.date(2021, 6, 25), 457),
    "ClassifSetorial_2021-09-15.xlsx": (LEGACY, dt.date(2021, 9, 15), 475),
    "ClassifSetorial_2021-09-23.xlsx": (LEGACY, dt.date(2021, 9, 23), 474),
    "ClassifSetorial_2022-06-24.zip": (LEGACY, dt.date(2022, 6, 24), 472),
    "ClassifSetorial_2023-08-30.xlsx": (LEGACY, dt.date(2023, 8, 30), 435),
    "ClassifSetorial_2023-09-20.zip": (LEGACY, dt.date(2023, 9, 20), 435),
    "ClassifSetorial_2024-05-14.xlsx": (LEGACY, dt.date(2024, 5, 14), 434),
    "ClassifSetorial_2024-06-19.zip": (LEGACY, dt.date(2024, 6, 19), 402),
    "ClassifSetorial_2024-08-07.zip": (LEGACY, dt.date(2024, 8, 7), 399),
    "ClassifSetorial_2025-03-10.xlsx": (LEGACY, dt.date(2025, 3, 10), 393),
    "ClassifSetorial_newformat_committed-2025-10-31.xlsx": (NEW, dt.date(2025, 10, 31), 378),
    "feoff01_ClassifSetorial_resaved_committed-2026-05-06.xlsx": (DERIVED, dt.date(2026, 5, 6), 373),
}
LEGACY_2021 = SHIPPED_ROOT / "xlsx" / "ClassifSetorial_2021-06-25.xlsx"
NEW_2025 = SHIPPED_ROOT / "xlsx" / "ClassifSetorial_newformat_committed-2025-10-31.xlsx"
ZIP_2022 = SHIPPED_ROOT / "zip" / "ClassifSetorial_2022-06-24.zip"
SECTORS = {"Bens Industriais", "Comunicações", "Consumo Cíclico", "Consumo não Cíclico", "Financeiro",
           "Materiais Básicos", "Outros", "Petróleo, Gás e Biocombustíveis", "Saúde", "Tecnologia da Informação",
           "Utilidade Pública"}


def test_every_vintage_is_shipped():
    assert sorted(path.name for path in shipped_files()) == sorted(EXPECTED)
    assert (SHIPPED_ROOT / "SOURCES.md").is_file()


@pytest.mark.parametrize("path", shipped_files(), ids=lambda path: path.name)
def test_every_shipped_vintage_parses(path):
    layout, valid_from, listings = EXPECTED[path.name]
    vintage = parse_classification(path.read_bytes(), path.name)
    rows = vintage.rows
    assert (vintage.layout, vintage.valid_from, len(rows)) == (layout, valid_from, listings)
    assert list(rows.columns) == CLASSIFICATION_COLUMNS
    pa.Table.from_pandas(rows, schema=CLASSIFICATION_SCHEMA, preserve_index=False)  # nullability and types hold
    assert rows["codigo"].is_unique and rows["codigo"].str.fullmatch(r"[A-Z0-9]{4}").all()
    assert set(rows["setor_economico"]) == SECTORS
    assert 39 <= rows.groupby(["setor_economico", "subsetor"]).ngroups <= 45
    assert set(rows["vigente_desde"]) == {valid_from} and set(rows["source_file"]) == {path.name}
    for column in ("setor_economico", "subsetor"):  # no padding, no double spaces survive
        assert (rows[column] == rows[column].str.split().str.join(" ")).all()
    if layout == DERIVED:
        assert rows["segmento"].isna().all() and rows["fallback_only"].all()
    else:
        assert rows["segmento"].notna().all() and not rows["fallback_only"].any()
        assert 81 <= rows.groupby(["setor_economico", "subsetor", "segmento"]).ngroups <= 87


def by_code(path: Path) -> dict:
    rows = parse_classification(path.read_bytes(), path.name).rows.set_index("codigo")
    return {code: tuple(values) for code, values in rows[["setor_economico", "subsetor", "segmento"]].iterrows()}


def test_the_legacy_forward_fill_keeps_segments_out_of_company_names():
    codes = by_code(LEGACY_2021)
    assert codes["PETR"] == ("Petróleo, Gás e Biocombustíveis", "Petróleo, Gás e Biocombustíveis",
                             "Exploração, Refino e Distribuição")
    assert codes["LUPA"][2] == "Equipamentos e Serviços"  # a segment-only row (no code) opened a segment
    assert codes["VALE"] == ("Materiais Básicos", "Mineração", "Minerais Metálicos")
    assert codes["CSNA"] == ("Materiais Básicos", "Siderurgia e Metalurgia", "Siderurgia")  # a subsector row
    assert not {"3R PETROLEUM", "COSAN", "Equipamentos e Serviços"} & set(codes)


def test_the_new_layout_forward_fills_empty_strings():
    codes = by_code(NEW_2025)
    assert codes["AZTE"] == codes["PETR"] == ("Petróleo, Gás e Biocombustíveis", "Petróleo, Gás e Biocombustíveis",
                                              "Exploração, Refino e Distribuição")
    assert codes["FESA"] == ("Materiais Básicos", "Siderurgia e Metalurgia", "Siderurgia")
    assert codes["VALE"] == ("Materiais Básicos", "Mineração", "Minerais Metálicos")
    assert codes["LUPA"][2] == "Equipamentos e Serviços"


def test_a_zip_takes_its_vintage_from_b3s_member_name_decoded_from_cp437():
    with zipfile.ZipFile(ZIP_2022) as archive:
        [info] = archive.infolist()
    assert info.flag_bits & 0x800 == 0 and info.filename == "Setorial B3 24-06-2022 (português).xlsx"
    vintage = parse_classification(ZIP_2022.read_bytes(), "ClassifSetorial.zip")  # no date in the outer name
    assert vintage.valid_from == dt.date(2022, 6, 24) and vintage.source_file == "ClassifSetorial.zip"


def test_vintage_dates_in_names():
    assert vintage_from_name("Setorial B3 25-06-2021 (portugu\x88s).xlsx") == dt.date(2021, 6, 25)
    assert vintage_from_name("x/ClassifSetorial_2024-08-07.zip") == dt.date(2024, 8, 7)
    assert vintage_from_name("ClassifSetorial.xlsx") is None


def test_without_a_date_the_caller_must_give_one():
    with pytest.raises(ClassificationError, match=r"ClassifSetorial\.xlsx: no vintage date.*pass valid_from"):
        parse_classification(NEW_2025.read_bytes(), "ClassifSetorial.xlsx")
    day = dt.date(2026, 11, 30)
    assert parse_classification(NEW_2025.read_bytes(), "ClassifSetorial.xlsx", valid_from=day).valid_from == day


def test_the_same_bytes_are_parsed_once_per_process_and_each_caller_gets_rows_of_its_own(monkeypatch):
    from b3_dagster.sources import b3_classification

    parses = []
    real_parse = b3_classification._parse
    monkeypatch.setattr(b3_classification, "_PARSED", {})  # this test's own memory, whatever ran before it
    monkeypatch.setattr(b3_classification, "_parse", lambda *args: parses.append(args[1]) or real_parse(*args))
    first = parse_classification(LEGACY_2021.read_bytes(), LEGACY_2021.name)
    first.rows.loc[:, "subsetor"] = "changed by a caller"
    again = parse_classification(LEGACY_2021.read_bytes(), LEGACY_2021.name)
    assert parses == [LEGACY_2021.name], "parsed once"
    assert "changed by a caller" not in set(again.rows["subsetor"]) and again.valid_from == dt.date(2021, 6, 25)
    other_day = parse_classification(LEGACY_2021.read_bytes(), LEGACY_2021.name, valid_from=dt.date(2021, 7, 1))
    assert other_day.valid_from == dt.date(2021, 7, 1) and len(parses) == 2, "another vintage asked: parsed again"


def test_the_shipped_history_has_one_complete_vintage_per_date():
    history = load_shipped_classification()
    assert len(history) == sum(count for _, _, count in EXPECTED.values())
    assert history["vigente_desde"].is_monotonic_increasing
    again = parse_classification(LEGACY_2021.read_bytes(), "copy_2021-06-25.xlsx")
    with pytest.raises(ClassificationError, match="vintage 2021-06-25 is also given by"):
        classification_history([parse_classification(LEGACY_2021.read_bytes(), LEGACY_2021.name), again])


def test_an_unchanged_live_download_is_not_a_new_vintage():
    history = load_shipped_classification()
    same = parse_classification(NEW_2025.read_bytes(), "live.xlsx", valid_from=dt.date(2026, 11, 30))
    assert not is_new_vintage(history, same)
    changed = edited(NEW_2025, lambda sheet: setattr(sheet["F5"], "value", "BRAX"))  # hand-made: one code renamed
    assert is_new_vintage(history, parse_classification(changed, "live.xlsx", valid_from=dt.date(2026, 11, 30)))


# ---- faults: hand-made from real workbooks (each edit is named in the test) ------------------------------------------
def edited(path: Path, edit) -> bytes:
    """The real workbook re-saved after ``edit(worksheet)``: a hand-made fault case."""
    workbook = load_workbook(io.BytesIO(path.read_bytes()))
    edit(workbook.worksheets[0])
    sink = io.BytesIO()
    workbook.save(sink)
    return sink.getvalue()


def test_a_bad_issuer_code_names_file_sheet_row_and_column():
    data = edited(LEGACY_2021, lambda sheet: setattr(sheet["D10"], "value", "RRRP3"))
    with pytest.raises(ClassificationError) as caught:
        parse_classification(data, "ClassifSetorial_2021-06-25.xlsx")
    assert str(caught.value).startswith("ClassifSetorial_2021-06-25.xlsx, sheet 'Plan3', row 10 column D: 'RRRP3'")
    assert (caught.value.sheet, caught.value.row) == ("Plan3", 10)


def test_a_repeated_code_names_both_rows():
    data = edited(LEGACY_2021, lambda sheet: setattr(sheet["D11"], "value", "RRRP"))
    with pytest.raises(ClassificationError, match=r"row 11 column D: issuer code RRRP already listed on row 10"):
        parse_classification(data, LEGACY_2021.name)


def test_a_truncated_legacy_sheet_is_refused():
    def cut(sheet):
        sheet.delete_rows(200, sheet.max_row)

    with pytest.raises(ClassificationError, match=r"sheet 'Plan3', row \d+: no legend"):
        parse_classification(edited(LEGACY_2021, cut), LEGACY_2021.name)


def test_an_unknown_row_shape_is_refused():
    data = edited(LEGACY_2021, lambda sheet: setattr(sheet["A12"], "value", "Energia"))  # a sector on a company row
    with pytest.raises(ClassificationError, match=r"row 12: a company row has only"):
        parse_classification(data, LEGACY_2021.name)


def test_content_outside_the_columns_is_refused():
    data = edited(NEW_2025, lambda sheet: setattr(sheet["I30"], "value", "nota"))
    with pytest.raises(ClassificationError, match=r"sheet 'Planilha', row 30 column I: unexpected content 'nota'"):
        parse_classification(data, NEW_2025.name)


def test_a_new_layout_row_without_code_is_refused():
    data = edited(NEW_2025, lambda sheet: setattr(sheet["F5"], "value", ""))
    with pytest.raises(ClassificationError, match=r"row 5: every data row has a trading name"):
        parse_classification(data, NEW_2025.name)


def test_not_a_classification():
    with pytest.raises(ClassificationError, match=r"page.html: not an .xlsx or .zip file \(an HTML"):
        parse_classification(b"<html>Service Unavailable</html>", "page.html")
    data = edited(LEGACY_2021, lambda sheet: setattr(sheet["A1"], "value", "Outra planilha"))
    with pytest.raises(ClassificationError, match="not a B3 sector classification"):
        parse_classification(data, "other.xlsx")


def zip_of(members: dict[str, bytes]) -> bytes:
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return sink.getvalue()


def test_a_zip_holds_exactly_one_workbook():
    data = zip_of({"a.xlsx": LEGACY_2021.read_bytes(), "b.xlsx": NEW_2025.read_bytes()})
    with pytest.raises(ClassificationError, match=r"two.zip: B3's ClassifSetorial.zip holds exactly one .xlsx"):
        parse_classification(data, "two.zip")


def test_a_damaged_zip_member_is_refused():
    data = bytearray(ZIP_2022.read_bytes())
    data[2000] ^= 0xFF  # one flipped byte inside the compressed member
    with pytest.raises(ClassificationError, match=r"ClassifSetorial_2022-06-24.zip.*(damaged|not a readable)"):
        parse_classification(bytes(data), ZIP_2022.name)


# ---- live download ---------------------------------------------------------------------------------------------------
def test_the_download_url_carries_base64_of_the_language():
    assert download_url() == ("https://sistemaswebb3-listados.b3.com.br/listedCompaniesProxy/CompanyCall/"
                              "GetDownloadIndustryClassification/eyJsYW5ndWFnZSI6InB0LWJyIn0=")


def test_fetch_parses_the_served_workbook_with_the_download_day(httpserver):
    path = re.compile("^/listedCompaniesProxy/CompanyCall/GetDownloadIndustryClassification/eyJsYW5n.+")
    httpserver.expect_request(path).respond_with_data(
        NEW_2025.read_bytes(), content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    day = dt.date(2026, 11, 30)
    download = fetch_classification(day, base_url=httpserver.url_for("").rstrip("/"))
    vintage = download.vintage
    assert download.data == NEW_2025.read_bytes() and "GetDownloadIndustryClassification/eyJ" in download.url
    assert (vintage.layout, vintage.valid_from, len(vintage.rows)) == (NEW, day, 378)
    assert vintage.source_file == "GetDownloadIndustryClassification_2026-11-30.xlsx"


def test_fetch_reports_an_error_page(httpserver):
    httpserver.expect_request(re.compile(".*")).respond_with_data("<html>erro</html>", status=200,
                                                                  content_type="text/html")
    with pytest.raises(ClassificationError, match="not an .xlsx or .zip file"):
        fetch_classification(dt.date(2026, 11, 30), base_url=httpserver.url_for("").rstrip("/"))
