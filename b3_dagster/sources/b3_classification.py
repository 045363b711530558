"""B3's sector classification ("Classificação Setorial"), parsed strictly from its workbooks.

B3 classifies every listed issuer, by its 4-letter code (``PETR`` for PETR3/PETR4), into setor econômico / subsetor /
segmento. Three workbook layouts exist (see ``b3_dagster/recordings/b3_sectors/SOURCES.md``):

* **legacy** (2021-06 to 2025-03, the member of B3's ``ClassifSetorial.zip``): first sheet ``Plan3`` or
  ``Class_setorial``, title ``CLASSIFICAÇÃO SETORIAL DAS EMPRESAS NEGOCIADAS NA B3`` in A1, columns A-E. A header
  block (``SETOR ECONÔMICO | SUBSETOR | SEGMENTO | LISTAGEM`` over ``CÓDIGO | SEGMENTO``) is repeated before every
  sector. A group row ``(setor, subsetor, segmento)`` opens a sector, ``(-, subsetor, segmento)`` a subsector,
  ``(-, -, segmento)`` with no code a segment; company rows are ``(-, -, nome de pregão, CÓDIGO, listagem)``. Column
  C holds a segment name on group rows and a company name on company rows, so the levels are carried forward by a
  state machine, never by a column-wise fill. A legend (``(DR1) BDR Nível 1`` ...) and a disclaimer end the data.
* **new** (B3's ``GetDownloadIndustryClassification``, seen 2025-10): sheet ``Planilha`` starting at B2, columns
  ``SETOR | SUBSETOR | SEGMENTO | NOME DE PREGÃO | CÓDIGO | SEGMENTO DE NEGOCIAÇÃO``; the levels are written on the
  first row of each group and ``''`` below (forward-filled here); a one-row header repeats before every sector.
  The workbook has no date: the caller gives the vintage (the download day), or the file name carries it.
* **derived** (a user's re-save of the 2026 classification, cut to ``SETOR | SUBSETOR | CÓDIGO``): no segment.
  Its rows are marked ``fallback_only``: they may place a root that no complete vintage knows, and are never the
  vintage valid on a day (see ``b3_dagster.transforms.sector_dimension``).

Both ``.xlsx`` and B3's ``.zip`` (one member, whose name is stored in cp437 with the UTF-8 flag clear: Python's
``zipfile`` decodes it correctly) are accepted. Every violation raises ``ClassificationError`` naming the file,
sheet, row (and column).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable

import pandas as pd
import pyarrow as pa
from openpyxl import load_workbook

from b3_dagster.errors import ClassificationError
from b3_dagster.model import (
    CLASSIFICATION_COLUMNS,
    CLASSIFICATION_SCHEMA,
    ECONOMIC_SECTOR,
    FALLBACK_ONLY,
    ISSUER_CODE,
    SEGMENT,
    SOURCE_FILE,
    SUBSECTOR,
    VALID_FROM,
)
from b3_dagster.settings import B3_HOST
from b3_dagster.sources.b3_format import encode_payload

LEGACY, NEW, DERIVED = "legacy", "new", "derived"
LEGACY_TITLE = "CLASSIFICAÇÃO SETORIAL DAS EMPRESAS NEGOCIADAS NA B3"
LEGACY_HEADER = ("SETOR ECONÔMICO", "SUBSETOR", "SEGMENTO", "LISTAGEM", "")
LEGACY_SUBHEADER = ("", "", "", "CÓDIGO", "SEGMENTO")
LEGACY_SHEETS = ("Plan3", "Class_setorial")
NEW_FIRST_HEADER = ("SETOR", "SUBSETOR", "SEGMENTO", "EMISSOR", "", "")
NEW_FIRST_SUBHEADER = ("", "", "", "NOME DE PREGÃO", "CÓDIGO", "SEGMENTO DE NEGOCIAÇÃO")
NEW_HEADER = ("SETOR ECONÔMICO", "SUBSETOR", "SEGMENTO", "NOME DE PREGÃO", "CÓDIGO", "SEGMENTO DE NEGOCIAÇÃO")
DERIVED_HEADER = ("SETOR", "SUBSETOR", "")
DERIVED_SUBHEADER = ("", "", "CÓDIGO")
# The legend that ends a legacy sheet: "(DR1) BDR Nível 1", "(NM) Novo Mercado", ...
LEGEND_PATTERN = re.compile(r"^\([A-Z0-9]{2,3}\) ")
ISSUER_CODE_PATTERN = re.compile(r"^[A-Z0-9]{4}$")
# The vintage in a file name: B3's "Setorial B3 25-06-2021 (português).xlsx", the shipped
# "ClassifSetorial_2021-06-25.xlsx" or "..._committed-2025-10-31.xlsx".
_DATE_IN_NAME = (re.compile(r"(?P<d>\d{2})-(?P<m>\d{2})-(?P<y>\d{4})"), re.compile(r"(?P<y>\d{4})-(?P<m>\d{2})-(?P<d>\d{2})"))
XLSX_MAGIC = b"PK\x03\x04"

DOWNLOAD_PATH = "/listedCompaniesProxy/CompanyCall/GetDownloadIndustryClassification/"
MAX_DOWNLOAD_BYTES = 5_000_000  # the live workbook is ~17 kB

SHIPPED_ROOT = Path(__file__).resolve().parents[1] / "recordings" / "b3_sectors"


@dataclass(frozen=True)
class Vintage:
    """One parsed classification workbook."""

    source_file: str
    layout: str  # legacy | new | derived
    valid_from: dt.date
    rows: pd.DataFrame  # CLASSIFICATION_COLUMNS, one row per issuer code

    @property
    def fallback_only(self) -> bool:
        return self.layout == DERIVED


def _text(value, file: str, sheet: str, row: int, column: int) -> str:
    """A cell as text with B3's padding removed and inner runs of spaces collapsed ('' for an empty cell)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ClassificationError(file, f"expected text, found {value!r} ({type(value).__name__})", sheet, row, column)
    return " ".join(value.split())


def vintage_from_name(name: str) -> dt.date | None:
    """The date in a classification file name (``Setorial B3 25-06-2021 (português).xlsx``), or None."""
    base = Path(name).name
    for pattern in _DATE_IN_NAME:
        match = pattern.search(base)
        if match:
            try:
                return dt.date(int(match["y"]), int(match["m"]), int(match["d"]))
            except ValueError:
                return None
    return None


def _workbook_bytes(data: bytes, name: str) -> tuple[bytes, str]:
    """The .xlsx bytes and the name to report: a zip holds exactly one .xlsx member (B3's ClassifSetorial.zip)."""
    if not data.startswith(XLSX_MAGIC):
        hint = " (an HTML or JSON error page?)" if data.lstrip()[:1] in (b"<", b"{") else ""
        raise ClassificationError(name, f"not an .xlsx or .zip file{hint}; first bytes {data[:16]!r}")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.namelist()
    except zipfile.BadZipFile as error:
        raise ClassificationError(name, f"not a readable zip/xlsx: {error}") from error
    if "[Content_Types].xml" in members:
        return data, name
    workbooks = [member for member in members if member.lower().endswith(".xlsx")]
    if len(workbooks) != 1 or len(members) != 1:
        raise ClassificationError(name, f"B3's ClassifSetorial.zip holds exactly one .xlsx, found {members}")
    try:
        return archive.read(workbooks[0]), f"{name}!{workbooks[0]}"
    except (zipfile.BadZipFile, OSError) as error:  # a CRC mismatch is a BadZipFile
        raise ClassificationError(name, f"member {workbooks[0]!r} is damaged: {error}") from error


def _row_texts(cells: tuple, first: int, width: int, file: str, sheet: str, row: int) -> tuple[str, ...]:
    """``width`` cells from column ``first`` (0-based) as text; any other non-empty cell is an error."""
    for position, value in enumerate(cells):
        if (position < first or position >= first + width) and value not in (None, ""):
            raise ClassificationError(file, f"unexpected content {value!r} outside the classification's columns",
                                      sheet, row, position + 1)
    padded = tuple(cells[first:first + width]) + (None,) * max(0, first + width - len(cells))
    return tuple(_text(value, file, sheet, row, first + i + 1) for i, value in enumerate(padded))


def _check_code(code: str, file: str, sheet: str, row: int, column: int, seen: dict[str, int]) -> None:
    if not ISSUER_CODE_PATTERN.match(code):
        raise ClassificationError(file, f"{code!r} is not a 4-character B3 issuer code", sheet, row, column)
    if code in seen:
        raise ClassificationError(file, f"issuer code {code} already listed on row {seen[code]}", sheet, row, column)
    seen[code] = row


def _parse_legacy(rows: list[tuple], file: str, sheet: str) -> list[tuple[str, str, str, str]]:
    """(code, setor, subsetor, segmento) per company row, by the forward-fill state machine of the module doc."""
    out: list[tuple[str, str, str, str]] = []
    seen: dict[str, int] = {}
    setor = subsetor = segmento = ""
    expect_subheader = False
    for number, cells in enumerate(rows[1:], start=2):
        if cells and isinstance(cells[0], str) and LEGEND_PATTERN.match(cells[0].strip()):
            break  # the legend: the data is over (the disclaimer below is not data)
        a, b, c, d, e = _row_texts(cells, 0, 5, file, sheet, number)
        if expect_subheader:
            if (a, b, c, d, e) != LEGACY_SUBHEADER:
                raise ClassificationError(file, f"expected the header's second row {LEGACY_SUBHEADER}, found "
                                                f"{(a, b, c, d, e)}", sheet, number)
            expect_subheader = False
            continue
        if not any((a, b, c, d, e)):
            continue
        if (a, b, c, d, e) == LEGACY_HEADER:
            expect_subheader = True
            continue
        if d:  # a company row: (-, -, nome de pregão, CÓDIGO, listagem)
            if a or b or not c:
                raise ClassificationError(file, f"a company row has only a trading name in C, a code in D and a "
                                                f"listing in E; found {(a, b, c, d, e)}", sheet, number)
            if not segmento:
                raise ClassificationError(file, f"company {d} before any sector/subsector/segment row", sheet, number)
            _check_code(d, file, sheet, number, 4, seen)
            out.append((d, setor, subsetor, segmento))
            continue
        if e:
            raise ClassificationError(file, f"a listing segment {e!r} without an issuer code", sheet, number, 5)
        setor, subsetor, segmento = _legacy_group((a, b, c, d, e), (setor, subsetor, segmento), file, sheet, number)
    else:
        raise ClassificationError(file, "no legend ('(DR1) BDR Nível 1', ...) after the data: truncated sheet?",
                                  sheet, len(rows))
    if expect_subheader:
        raise ClassificationError(file, "the sheet ends inside a header", sheet, len(rows))
    return out


def _legacy_group(cells: tuple[str, str, str, str, str], current: tuple[str, str, str], file: str, sheet: str,
                  number: int) -> tuple[str, str, str]:
    """A group row (no issuer code) -> the (setor, subsetor, segmento) that the rows below it belong to."""
    a, b, c, d, e = cells
    setor, subsetor, segmento = current
    if a and b and c:  # a new sector
        return a, b, c
    if not a and b and c:  # a new subsector of the current sector
        if not setor:
            raise ClassificationError(file, f"subsector {b!r} before any sector", sheet, number)
        return setor, b, c
    if not a and not b and c:  # a new segment of the current subsector
        if not subsetor:
            raise ClassificationError(file, f"segment {c!r} before any subsector", sheet, number)
        return setor, subsetor, c
    raise ClassificationError(file, f"not a header, group or company row: {(a, b, c, d, e)}", sheet, number)


def _parse_new(rows: list[tuple], file: str, sheet: str, start: int) -> list[tuple[str, str, str, str]]:
    """Rows after the two-row first header (B-G): levels on the first row of a group, '' below."""
    out: list[tuple[str, str, str, str]] = []
    seen: dict[str, int] = {}
    setor = subsetor = segmento = ""
    for number in range(start, len(rows) + 1):
        texts = _row_texts(rows[number - 1], 1, 6, file, sheet, number)
        if not any(texts):
            continue
        if texts == NEW_HEADER:
            continue
        a, b, c, name, code, listing = texts
        if not code or not name:
            raise ClassificationError(file, f"every data row has a trading name (E) and an issuer code (F); found "
                                            f"{texts}", sheet, number)
        if a:  # a new sector restates its subsector and segment
            if not (b and c):
                raise ClassificationError(file, f"sector {a!r} without its subsector and segment", sheet, number)
            setor, subsetor, segmento = a, b, c
        elif b:
            if not c:
                raise ClassificationError(file, f"subsector {b!r} without its segment", sheet, number)
            subsetor, segmento = b, c
        elif c:
            segmento = c
        if not (setor and subsetor and segmento):
            raise ClassificationError(file, f"company {code} before any sector/subsector/segment", sheet, number)
        _check_code(code, file, sheet, number, 6, seen)
        out.append((code, setor, subsetor, segmento))
    return out


def _parse_derived(rows: list[tuple], file: str, sheet: str) -> list[tuple[str, str, str, None]]:
    out: list[tuple[str, str, str, None]] = []
    seen: dict[str, int] = {}
    for number in range(3, len(rows) + 1):
        setor, subsetor, code = _row_texts(rows[number - 1], 0, 3, file, sheet, number)
        if not any((setor, subsetor, code)):
            continue
        if not (setor and subsetor and code):
            raise ClassificationError(file, f"every row has SETOR, SUBSETOR and CÓDIGO; found "
                                            f"{(setor, subsetor, code)}", sheet, number)
        _check_code(code, file, sheet, number, 3, seen)
        out.append((code, setor, subsetor, None))
    return out


def _detect(rows: list[tuple], file: str, sheet: str) -> str:
    def texts(number: int, first: int, width: int) -> tuple[str, ...]:
        if number > len(rows):
            return ()
        cells = tuple(rows[number - 1][first:first + width])
        return tuple("" if v is None else " ".join(str(v).split()) for v in cells)

    if texts(1, 0, 1) == (LEGACY_TITLE,):
        return LEGACY
    if texts(2, 1, 6) == NEW_FIRST_HEADER and texts(3, 1, 6) == NEW_FIRST_SUBHEADER:
        return NEW
    if texts(1, 0, 3) == DERIVED_HEADER and texts(2, 0, 3) == DERIVED_SUBHEADER:
        return DERIVED
    raise ClassificationError(file, "not a B3 sector classification: expected the legacy title "
                                    f"{LEGACY_TITLE!r} in A1, the GetDownloadIndustryClassification header "
                                    f"{NEW_FIRST_HEADER[:4]} at B2, or the columns SETOR, SUBSETOR, CÓDIGO", sheet)


# Parses made in this process, by the digest of the workbook's bytes, its name and the vintage asked for: one parse of
# the 12 shipped workbooks takes ~0.7 s, and a process needs them again and again (the CSV import and the refine of
# the demo; each test's new lake, whose parse cache in the lake is empty).
_PARSED: dict[tuple[str, str, dt.date | None], Vintage] = {}


def parse_classification(data: bytes, name: str, valid_from: dt.date | None = None) -> Vintage:
    """Parse one classification workbook (``.xlsx`` or B3's ``.zip``).

    ``valid_from`` is the vintage date; when omitted it is read from the file name (B3's member name in a zip, or
    the ``.xlsx`` name). The new layout has no date inside, so a live download must pass its download day.
    The same bytes are parsed once per process; each caller gets rows of its own.
    """
    key = (hashlib.sha256(data).hexdigest(), name, valid_from)
    if key not in _PARSED:
        _PARSED[key] = _parse(data, name, valid_from)
    parsed = _PARSED[key]
    return replace(parsed, rows=parsed.rows.copy())


def _parse(data: bytes, name: str, valid_from: dt.date | None) -> Vintage:
    workbook_data, reported = _workbook_bytes(data, name)
    try:
        workbook = load_workbook(io.BytesIO(workbook_data), read_only=True, data_only=True)
    except Exception as error:  # openpyxl raises many types (KeyError, InvalidFileException, ...) for a bad file
        raise ClassificationError(reported, f"not a readable .xlsx workbook: {type(error).__name__}: {error}") from error
    try:
        sheet = workbook.sheetnames[0]
        rows = [tuple(row) for row in workbook[sheet].iter_rows(min_row=1, min_col=1, values_only=True)]
    finally:
        workbook.close()
    layout = _detect(rows, reported, sheet)
    if layout == LEGACY and sheet not in LEGACY_SHEETS:
        raise ClassificationError(reported, f"the legacy layout's first sheet is one of {LEGACY_SHEETS}", sheet)
    if layout == LEGACY:
        records = _parse_legacy(rows, reported, sheet)
    elif layout == NEW:
        records = _parse_new(rows, reported, sheet, start=4)
    else:
        records = _parse_derived(rows, reported, sheet)
    if not records:
        raise ClassificationError(reported, "no issuer rows", sheet)

    day = valid_from or vintage_from_name(reported.rsplit("!", 1)[-1]) or vintage_from_name(name)
    if day is None:
        raise ClassificationError(reported, "no vintage date: the file name has none (B3 names it 'Setorial B3 "
                                            "DD-MM-YYYY (português).xlsx'), so pass valid_from (the download day)")
    frame = pd.DataFrame(records, columns=[ISSUER_CODE, ECONOMIC_SECTOR, SUBSECTOR, SEGMENT])
    frame[VALID_FROM] = day
    frame[SOURCE_FILE] = Path(name).name
    frame[FALLBACK_ONLY] = layout == DERIVED
    table = pa.Table.from_pandas(frame[CLASSIFICATION_COLUMNS], schema=CLASSIFICATION_SCHEMA, preserve_index=False)
    return Vintage(source_file=Path(name).name, layout=layout, valid_from=day,
                   rows=table.to_pandas(date_as_object=True))


def classification_history(vintages: Iterable[Vintage]) -> pd.DataFrame:
    """Every vintage's rows in one frame (CLASSIFICATION_COLUMNS), oldest first. Two vintages may not share a date
    unless one of them is fallback-only (a vintage is keyed by its date)."""
    vintages = sorted(vintages, key=lambda v: (v.valid_from, v.fallback_only, v.source_file))
    complete = [v for v in vintages if not v.fallback_only]
    for earlier, later in zip(complete, complete[1:]):
        if earlier.valid_from == later.valid_from:
            raise ClassificationError(later.source_file, f"vintage {later.valid_from} is also given by "
                                                         f"{earlier.source_file}: keep one file per vintage")
    if not vintages:
        return CLASSIFICATION_SCHEMA.empty_table().to_pandas(date_as_object=True)
    return pd.concat([v.rows for v in vintages], ignore_index=True)


def is_new_vintage(history: pd.DataFrame, vintage: Vintage) -> bool:
    """False when ``vintage`` classifies every issuer exactly as the latest earlier complete vintage of ``history``
    does (a daily live download of an unchanged classification adds nothing)."""
    if vintage.fallback_only:
        return True
    earlier = history[(~history[FALLBACK_ONLY]) & (history[VALID_FROM] <= vintage.valid_from)]
    if earlier.empty:
        return True
    latest = earlier[earlier[VALID_FROM] == earlier[VALID_FROM].max()]
    columns = [ISSUER_CODE, ECONOMIC_SECTOR, SUBSECTOR, SEGMENT]
    ordered = [frame[columns].sort_values(ISSUER_CODE).reset_index(drop=True) for frame in (latest, vintage.rows)]
    return not ordered[0].equals(ordered[1])


def shipped_files(root: Path = SHIPPED_ROOT) -> list[Path]:
    """The real vintages shipped with the package (see recordings/b3_sectors/SOURCES.md)."""
    return sorted(path for pattern in ("*/*.xlsx", "*/*.zip") for path in root.glob(pattern))


def load_shipped_classification(root: Path = SHIPPED_ROOT) -> pd.DataFrame:
    """The classification history of every shipped vintage (CLASSIFICATION_COLUMNS)."""
    return classification_history(parse_classification(path.read_bytes(), path.name) for path in shipped_files(root))


# ---- live download -------------------------------------------------------------------------------------------------
def download_url(base_url: str = B3_HOST, language: str = "pt-br") -> str:
    """B3's live classification workbook (new layout): the payload is base64 of ``{"language":"pt-br"}``."""
    return f"{base_url.rstrip('/')}{DOWNLOAD_PATH}{encode_payload({'language': language})}"


@dataclass(frozen=True)
class Download:
    """One live download: B3's bytes as served (to keep in the lake) and their parse."""

    url: str
    data: bytes
    vintage: Vintage


def fetch_classification(day: dt.date, base_url: str = B3_HOST, session=None,
                         policy=None) -> Download:
    """Download and parse the current classification; ``day`` (the download day) becomes its vintage date."""
    from b3_dagster.sources.http import HttpPolicy, get_ok, http_session

    url = download_url(base_url)
    answer = get_ok(session or http_session(), url, policy or HttpPolicy(max_bytes=MAX_DOWNLOAD_BYTES),
                    lambda reason: ClassificationError(url, reason))
    response_content = answer.body
    name = f"GetDownloadIndustryClassification_{day.isoformat()}.xlsx"
    return Download(url, response_content, parse_classification(response_content, name, valid_from=day))
