"""B3's official daily index closes: the yearly grid of ``indexStatisticsProxy`` and the "Evolução" CSV downloads.

B3 serves each index's closes one year at a time::

    GET /indexStatisticsProxy/IndexCall/GetPortfolioDay/<base64 {"index":"IBOV","language":"pt-br","year":"2024"}>
    {"min": {"day": 0, "rateValue1": "101.005,64", ... "rateValue12": ...},
     "max": {"day": 0, ...},
     "results": [{"day": 1, "rateValue1": null, "rateValue2": "113.228,31", ...}, ... 31 rows]}

``rateValueN`` is the close on day ``day`` of month N as a string in the request's number format (pt-br
``"113.228,31"``, en-us ``"113,228.31"``), or null on a non-session and on impossible dates (Feb 30). ``min``/``max``
are each month's published lowest and highest close. The index page offers the same grid as the download
``Evolucao_Diaria.csv`` (two footer rows, both labelled ``MÍNIMO``: the first holds the minima, the second the
**maxima**) and month-end closes as ``Evolucao_Mensal.csv``. Quirks (``../shared/data/b3_index_history/SOURCES.md``):

* the current year is partial: it stops at the last session before the request, and its min/max cover only those;
* B3 never back-adjusts a re-denomination: IBOV was divided by 10 on 1997-03-03, and Jan-Feb 1997 stay on the old
  scale (~70,000-91,000 against ~9,000 from March). Closes are stored as published; ``on_current_scale`` divides
  earlier closes for comparisons with series that are continuous (Yahoo's ^BVSP);
* some saved answers are wrapped by the tool that saved them (``{"params": {...}, "raw": {min, max, results}}``).

Every function is pure except ``fetch_year``. Bad input raises ``B3IndexHistoryError`` naming the source, the cell
(day and month) or the CSV line, and the field.
"""

from __future__ import annotations

import calendar as month_calendar
import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd
import requests

from b3_dagster.errors import B3FormatError, B3IndexHistoryError
from b3_dagster.model import (
    CLOSE_DATE,
    CLOSE_SOURCE,
    INDEX_CLOSES_COLUMNS,
    INDEX_CLOSES_SCHEMA,
    INDEX_CODE,
    MONTH_COLUMN,
    MONTH_LAST_CLOSE,
    MONTH_MAX,
    MONTH_MIN,
    MONTHLY_CLOSE_COLUMNS,
    MONTHLY_MIN_MAX_COLUMNS,
    OFFICIAL_CLOSE,
    YEAR_COLUMN,
)
from b3_dagster.settings import B3_HOST
from b3_dagster.sources.b3_format import decode_payload, encode_payload, parse_decimal, parse_json_body
from b3_dagster.sources.http import HttpPolicy, get_ok, http_session

ENDPOINT_PATH = "/indexStatisticsProxy/IndexCall/GetPortfolioDay/"
MONTHS = range(1, 13)
GRID_DAYS = 31
INDEX_CODE_PATTERN = re.compile(r"^[A-Z0-9]{3,5}$")
FIRST_YEAR = 1968  # IBOV's first year; B3 serves nothing earlier

# Re-denominations B3 does not back-adjust: (index, first day on the new scale) -> divisor of earlier closes.
# Only the one verified on recorded data is listed (IBOV 1997 grid against Yahoo's continuous ^BVSP).
REDENOMINATIONS: dict[tuple[str, dt.date], float] = {("IBOV", dt.date(1997, 3, 3)): 10.0}

# Titles of the CSV downloads -> index code (the downloads name the index, the API takes the code).
CSV_TITLE_CODES = {"IBOVESPA": "IBOV"}



# ---------------------------------------------------------------------------------------------------------------------
# Request
# ---------------------------------------------------------------------------------------------------------------------
def history_payload(index: str, year: int, language: str = "pt-br") -> dict[str, str]:
    """B3's payload; ``year`` is sent as a string (B3 also accepts an integer, as rb3 sends it)."""
    if not INDEX_CODE_PATTERN.match(index or ""):
        raise ValueError(f"{index!r} is not a B3 index code (e.g. IBOV, IBXX, SMLL)")
    if not FIRST_YEAR <= int(year) <= 9999:
        raise ValueError(f"year {year} is before {FIRST_YEAR}, the first year B3 serves")
    if language not in ("pt-br", "en-us"):
        raise ValueError(f"language {language!r}: B3 answers pt-br or en-us")
    return {"index": index, "language": language, "year": str(int(year))}


def history_url(index: str, year: int, language: str = "pt-br", base_url: str = B3_HOST) -> str:
    return f"{base_url.rstrip('/')}{ENDPOINT_PATH}{encode_payload(history_payload(index, year, language))}"


# ---------------------------------------------------------------------------------------------------------------------
# The year grid
# ---------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IndexYear:
    """One index's official closes of one year, as B3 published them."""

    index: str
    year: int
    closes: pd.DataFrame  # INDEX_CLOSES_COLUMNS (data, indice, fechamento), by date
    published: pd.DataFrame  # MONTHLY_MIN_MAX_COLUMNS: each month's published min and max (null for empty months)
    source: str

    @property
    def last_day(self) -> dt.date | None:
        return self.closes[CLOSE_DATE].max() if not self.closes.empty else None


def _cell(text: Any, language: str, source: str, *, day: int, month: int, name: str) -> float | None:
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if not isinstance(text, str):
        raise B3IndexHistoryError(source, f"{text!r} is a {type(text).__name__}; B3 sends closes as strings",
                                  day=day, month=month, field=name)
    try:
        value = parse_decimal(text, language)
    except B3FormatError as error:
        raise B3IndexHistoryError(source, f"{error} (does the language match the request's?)", day=day,
                                  month=month, field=name) from error
    if value <= 0:
        raise B3IndexHistoryError(source, f"close {text!r} is not positive", day=day, month=month, field=name)
    return value


def _closes_frame(index: str, rows: list[tuple[dt.date, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(sorted(rows), columns=[CLOSE_DATE, OFFICIAL_CLOSE])
    frame.insert(1, INDEX_CODE, index)
    return frame.astype({OFFICIAL_CLOSE: "float64"})[INDEX_CLOSES_COLUMNS]


def _published_frame(index: str, year: int, minima: dict[int, float | None],
                     maxima: dict[int, float | None]) -> pd.DataFrame:
    return pd.DataFrame(
        [(index, year, month, minima.get(month), maxima.get(month)) for month in MONTHS],
        columns=MONTHLY_MIN_MAX_COLUMNS,
    ).astype({YEAR_COLUMN: "int32", MONTH_COLUMN: "int32", MONTH_MIN: "float64", MONTH_MAX: "float64"})


def _grid_to_year(index: str, year: int, cells: dict[tuple[int, int], float | None],
                  minima: dict[int, float | None], maxima: dict[int, float | None], source: str,
                  where=lambda day, month: {"day": day, "month": month}) -> IndexYear:
    rows = []
    for (day, month), value in cells.items():
        if value is None:
            continue
        if day > month_calendar.monthrange(year, month)[1]:
            raise B3IndexHistoryError(source, f"a close ({value}) on an impossible date {year}-{month:02d}-{day:02d}",
                                      **where(day, month))
        rows.append((dt.date(year, month, day), value))
    return IndexYear(index, year, _closes_frame(index, rows), _published_frame(index, year, minima, maxima), source)


def unwrap_answer(document: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(B3's answer, the request parameters found with it). Saved answers are sometimes wrapped by the tool that
    saved them as ``{"params": {...}, "raw": {min, max, results}}``; a bare answer has no parameters."""
    if isinstance(document, dict) and "raw" in document and "results" not in document:
        params = document.get("params") if isinstance(document.get("params"), dict) else {}
        return document["raw"], params
    return document, {}


def parse_year_grid(body: bytes | str | dict, *, index: str, year: int, language: str = "pt-br",
                    source: str = "B3 index history") -> IndexYear:
    """Parse one ``indexStatisticsProxy`` answer. ``language`` must be the request's: it sets the number format."""
    if isinstance(body, dict):
        document = body
    else:
        document = parse_json_body(body, lambda reason: B3IndexHistoryError(source, reason))
    document, _ = unwrap_answer(document)
    if not isinstance(document, dict):
        raise B3IndexHistoryError(source, f"expected a JSON object, got {type(document).__name__}")
    for key in ("min", "max", "results"):
        if key not in document:
            raise B3IndexHistoryError(source, f"the answer lacks {key!r} (schema change, or no data for "
                                              f"{index} {year}?)", field=key)
    results = document["results"]
    if not isinstance(results, list) or len(results) != GRID_DAYS:
        size = len(results) if isinstance(results, list) else type(results).__name__
        raise B3IndexHistoryError(source, f"'results' must hold {GRID_DAYS} rows (one per day of month), found "
                                          f"{size}", field="results")
    cells: dict[tuple[int, int], float | None] = {}
    seen_days: set[int] = set()
    for position, row in enumerate(results, start=1):
        if not isinstance(row, dict) or not isinstance(row.get("day"), int):
            raise B3IndexHistoryError(source, f"row #{position} has no integer 'day'", field="results.day")
        day = row["day"]
        if not 1 <= day <= GRID_DAYS or day in seen_days:
            raise B3IndexHistoryError(source, f"row #{position}: day {day} is out of 1..31 or repeated",
                                      field="results.day")
        seen_days.add(day)
        for month in MONTHS:
            name = f"rateValue{month}"
            if name not in row:
                raise B3IndexHistoryError(source, "the row lacks the field (schema change?)", day=day, month=month,
                                          field=name)
            cells[(day, month)] = _cell(row[name], language, source, day=day, month=month, name=name)
    bounds = {}
    for key in ("min", "max"):
        block = document[key]
        if not isinstance(block, dict):
            raise B3IndexHistoryError(source, f"{key!r} is not an object", field=key)
        bounds[key] = {month: _cell(block.get(f"rateValue{month}"), language, source, day=0, month=month,
                                    name=f"{key}.rateValue{month}") for month in MONTHS}
    return _grid_to_year(index, int(year), cells, bounds["min"], bounds["max"], source)


def parse_wrapped_answer(body: bytes | str, source: str) -> IndexYear:
    """A wrapped saved answer carries its request (``params``: index, language, year): parse it with those."""
    document = parse_json_body(body, lambda reason: B3IndexHistoryError(source, reason))
    _, params = unwrap_answer(document)
    missing = [key for key in ("index", "language", "year") if key not in params]
    if missing:
        raise B3IndexHistoryError(source, f"the wrapper's 'params' lack {missing}: pass index, year and language "
                                          "to parse_year_grid instead", field="params")
    return parse_year_grid(document, index=params["index"], year=int(params["year"]), language=params["language"],
                           source=source)


class B3IndexHistoryClient:
    """One GET per (index, year), on the project's retrying session."""

    def __init__(self, base_url: str = B3_HOST, language: str = "pt-br", policy: HttpPolicy | None = None,
                 session: requests.Session | None = None):
        self.base_url = base_url.rstrip("/")
        self.language = language
        self.policy = policy or HttpPolicy()
        self.session = session or http_session()

    def url(self, index: str, year: int) -> str:
        return history_url(index, year, self.language, self.base_url)

    def fetch_year(self, index: str, year: int) -> tuple[bytes, IndexYear]:
        """B3's body as received (for the raw layer) and its parse."""
        url = self.url(index, year)
        source = f"B3 index history {index} {year} ({self.language}) [url {url}]"
        answer = get_ok(self.session, url, self.policy, lambda reason: B3IndexHistoryError(source, reason))
        return answer.body, parse_year_grid(answer.body, index=index, year=year, language=self.language,
                                                 source=source)


# ---------------------------------------------------------------------------------------------------------------------
# The CSV downloads
# ---------------------------------------------------------------------------------------------------------------------
DAILY_HEADER = ("Dia", "Jan", "Fev", "Mar", "Abr", "Mai", "Jun", "Jul", "Ago", "Set", "Out", "Nov", "Dez")
FOOTER_LABEL = "MÍNIMO"  # B3 labels both footer rows MÍNIMO; the second one holds the maxima
MONTHLY_HEADER = ("Mês", "Ano", "Valor")
_DAILY_TITLE = re.compile(r"^(?P<name>.+?) - (?P<year>\d{4})$")
_MONTHLY_TITLE = re.compile(r"^(?P<name>.+?) - (?P<start>\d{1,2}/\d{1,2}/\d{4}) \d{1,2}:\d{2}:\d{2} [AP]M "
                            r"(?P<end>\d{1,2}/\d{1,2}/\d{4}) \d{1,2}:\d{2}:\d{2} [AP]M$")


@dataclass(frozen=True)
class CsvText:
    lines: list[str]
    warnings: tuple[str, ...]


def _csv_lines(data: bytes, name: str) -> CsvText:
    """B3 writes these downloads in latin-1 (CRLF). A copy re-encoded as UTF-8 is read too, with a warning."""
    if not data:
        raise B3IndexHistoryError(name, "the file is empty")
    warnings: list[str] = []
    text = None
    if any(byte >= 0x80 for byte in data):
        try:
            text = data.decode("utf-8")
            warnings.append(f"{name}: UTF-8, not B3's latin-1: the file was re-encoded after download")
        except UnicodeDecodeError:
            text = None
    if text is None:
        text = data.decode("latin-1")
    text = text.lstrip("\ufeff")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return CsvText([line[:-1] if line.endswith("\r") else line for line in lines], tuple(warnings))


def _index_from_title(name_in_title: str, index: str | None, source: str, line: int = 1) -> str:
    if index:
        return index
    code = CSV_TITLE_CODES.get(name_in_title, name_in_title)
    if not INDEX_CODE_PATTERN.match(code):
        raise B3IndexHistoryError(source, f"the title names {name_in_title!r}, which is not a known index code; pass "
                                          "index=<code>", line=line)
    return code


def _expect_header(lines: list[str], header: tuple[str, ...], name: str) -> None:
    """Line 2 is ``header`` and line 3 is blank, as in every B3 "Evolução" download."""
    if tuple(lines[1].split(";")) != header:
        raise B3IndexHistoryError(name, f"unexpected header {lines[1][:100]!r}; expected {';'.join(header)!r}",
                                  line=2)
    if lines[2].strip(";").strip():
        raise B3IndexHistoryError(name, f"line 3 should be blank, found {lines[2][:80]!r}", line=3)


@dataclass(frozen=True)
class DailyEvolution:
    """An "Evolução Diária" download: the year grid as CSV."""

    title: str
    year_data: IndexYear
    warnings: tuple[str, ...]


def parse_daily_evolution_csv(data: bytes, name: str, index: str | None = None) -> DailyEvolution:
    """``Evolucao_Diaria.csv``: title ``<INDEX NAME> - <year>``, the header ``Dia;Jan;…;Dez``, a blank line, 31 day
    rows, then two rows labelled ``MÍNIMO``: the minima, then (mislabelled by B3) the maxima."""
    csv = _csv_lines(data, name)
    lines = csv.lines
    if len(lines) != 3 + GRID_DAYS + 2:
        raise B3IndexHistoryError(name, f"expected {3 + GRID_DAYS + 2} lines (title, header, blank, 31 days, 2 "
                                        f"footers), found {len(lines)} (truncated, or not an Evolução Diária file?)")
    title = _DAILY_TITLE.match(lines[0].strip())
    if not title:
        raise B3IndexHistoryError(name, f"expected the title '<INDEX> - <year>', found {lines[0][:80]!r}", line=1)
    year = int(title["year"])
    code = _index_from_title(title["name"], index, name)
    _expect_header(lines, DAILY_HEADER, name)

    def fields(number: int) -> list[str]:
        values = lines[number - 1].split(";")
        if len(values) != 13:
            raise B3IndexHistoryError(name, f"expected 13 fields (label + 12 months), found {len(values)}",
                                      line=number)
        return values

    def value(text: str, number: int, month: int, day: int) -> float | None:
        try:
            return _cell(text, "pt-br", name, day=day, month=month, name=DAILY_HEADER[month])
        except B3IndexHistoryError as error:
            raise B3IndexHistoryError(name, error.args[0].split(": ", 1)[1], line=number,
                                      field=DAILY_HEADER[month]) from None

    cells: dict[tuple[int, int], float | None] = {}
    for day in range(1, GRID_DAYS + 1):
        number = 3 + day
        values = fields(number)
        if values[0].strip() != str(day):
            raise B3IndexHistoryError(name, f"expected day {day}, found {values[0]!r}", line=number, field="Dia")
        for month in MONTHS:
            cells[(day, month)] = value(values[month], number, month, day)
    bounds = []
    for offset in (0, 1):
        number = 3 + GRID_DAYS + 1 + offset
        values = fields(number)
        if values[0] != FOOTER_LABEL:
            raise B3IndexHistoryError(name, f"expected a footer row labelled {FOOTER_LABEL!r}, found {values[0]!r}",
                                      line=number)
        bounds.append({month: value(values[month], number, month, 0) for month in MONTHS})
    where = lambda day, month: {"line": 3 + day, "field": DAILY_HEADER[month]}  # noqa: E731
    year_data = _grid_to_year(code, year, cells, bounds[0], bounds[1], name, where)
    return DailyEvolution(title["name"], year_data, csv.warnings)


@dataclass(frozen=True)
class MonthlyEvolution:
    """An "Evolução Mensal" download: each month's last close (for the month in progress: the latest close)."""

    title: str
    start: dt.date
    end: dt.date
    months: pd.DataFrame  # MONTHLY_CLOSE_COLUMNS
    warnings: tuple[str, ...]


def is_monthly_evolution(data: bytes, name: str = "download") -> bool:
    """An "Evolução Mensal" download (header ``Mês;Ano;Valor``), not an "Evolução Diária" one: the two downloads of
    the index page are imported by the same command."""
    lines = _csv_lines(data, name).lines
    return len(lines) > 1 and tuple(lines[1].split(";")) == MONTHLY_HEADER


def parse_monthly_evolution_csv(data: bytes, name: str, index: str | None = None) -> MonthlyEvolution:
    """``Evolucao_Mensal.csv``: title ``<INDEX> - M/D/YYYY 12:00:00 AM M/D/YYYY 12:00:00 AM`` (.NET US dates),
    the header ``Mês;Ano;Valor``, a blank line, then rows ``m;yyyy;value``."""
    csv = _csv_lines(data, name)
    lines = csv.lines
    if len(lines) < 4:
        raise B3IndexHistoryError(name, f"only {len(lines)} lines: no month rows (truncated?)")
    title = _MONTHLY_TITLE.match(lines[0].strip())
    if not title:
        raise B3IndexHistoryError(name, f"expected the title '<INDEX> - M/D/YYYY 12:00:00 AM M/D/YYYY 12:00:00 AM', "
                                        f"found {lines[0][:100]!r}", line=1)
    start, end = (dt.datetime.strptime(title[key], "%m/%d/%Y").date() for key in ("start", "end"))
    code = _index_from_title(title["name"], index, name)
    _expect_header(lines, MONTHLY_HEADER, name)
    rows = []
    seen: dict[tuple[int, int], int] = {}
    for number in range(4, len(lines) + 1):
        values = lines[number - 1].split(";")
        if len(values) != 3:
            raise B3IndexHistoryError(name, f"expected 3 fields 'month;year;value', found {lines[number - 1][:80]!r}",
                                      line=number)
        try:
            month, year = int(values[0]), int(values[1])
        except ValueError:
            raise B3IndexHistoryError(name, f"month/year {values[:2]} are not numbers", line=number) from None
        if month not in MONTHS or not start <= dt.date(year, month, 1) <= end:
            raise B3IndexHistoryError(name, f"month {month}/{year} is outside the title's range {start}..{end}",
                                      line=number, field="Mês")
        if (year, month) in seen:
            raise B3IndexHistoryError(name, f"month {month}/{year} repeats line {seen[(year, month)]}", line=number)
        seen[(year, month)] = number
        try:
            close = parse_decimal(values[2], "pt-br")
        except B3FormatError as error:
            raise B3IndexHistoryError(name, str(error), line=number, field="Valor") from error
        rows.append((code, year, month, close))
    months = pd.DataFrame(rows, columns=MONTHLY_CLOSE_COLUMNS).astype(
        {YEAR_COLUMN: "int32", MONTH_COLUMN: "int32", MONTH_LAST_CLOSE: "float64"})
    return MonthlyEvolution(title["name"], start, end, months, csv.warnings)


# ---------------------------------------------------------------------------------------------------------------------
# Scale
# ---------------------------------------------------------------------------------------------------------------------
def on_current_scale(closes: pd.DataFrame) -> pd.DataFrame:
    """The closes with every re-denomination undone (earlier closes divided), for comparing with continuous series."""
    frame = closes.copy()
    for (index, first_day), divisor in REDENOMINATIONS.items():
        earlier = (frame[INDEX_CODE] == index) & (frame[CLOSE_DATE] < first_day)
        frame.loc[earlier, OFFICIAL_CLOSE] = frame.loc[earlier, OFFICIAL_CLOSE] / divisor
    return frame


assert INDEX_CLOSES_SCHEMA.names == INDEX_CLOSES_COLUMNS


def close_of_record(official: pd.DataFrame, yahoo: pd.DataFrame, *, yahoo_date: str = "date",
                    yahoo_close: str = "close") -> pd.DataFrame:
    """One close per day with the source it came from (``fonte_fechamento``): B3's official close where B3 published
    one (on the current scale), Yahoo's close on the other days (typically the newest sessions, before the yearly
    grid is fetched again). Columns: data, fechamento, fonte_fechamento."""
    b3 = on_current_scale(official)[[CLOSE_DATE, OFFICIAL_CLOSE]].assign(**{CLOSE_SOURCE: "b3"})
    other = yahoo[[yahoo_date, yahoo_close]].dropna().rename(columns={yahoo_date: CLOSE_DATE,
                                                                     yahoo_close: OFFICIAL_CLOSE})
    other[CLOSE_DATE] = pd.to_datetime(other[CLOSE_DATE]).dt.date
    other = other[~other[CLOSE_DATE].isin(set(b3[CLOSE_DATE]))].assign(**{CLOSE_SOURCE: "yahoo"})
    return pd.concat([b3, other], ignore_index=True).sort_values(CLOSE_DATE).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------------------------------
# The shipped recordings (b3_dagster/recordings/b3_index_history), and their replay for the demo and tests
# ---------------------------------------------------------------------------------------------------------------------
# Bare answers do not say which request they answer: their provenance does (SOURCES.md there). Wrapped answers carry
# their request in ``params``.
RECORDED_BARE_GRIDS = {
    "argus_b3_ibov_1968.json": ("IBOV", 1968, "pt-br"),
    "argus_b3_ibov_1997.json": ("IBOV", 1997, "pt-br"),
    "rb3_IndexStatistics_IBOV_2022_pt-br_rec2022-12-08.json": ("IBOV", 2022, "pt-br"),
    "rb3_IndexStatistics_IBOV_2022_en-us_rec2025-04-07.json": ("IBOV", 2022, "en-us"),
}


@dataclass(frozen=True)
class RecordedGrid:
    index: str
    year: int
    language: str
    path: Any  # pathlib.Path

    def answer(self) -> bytes:
        """B3's answer as recorded (a wrapped save is unwrapped: the values are B3's, the wrapper is not)."""
        document, params = unwrap_answer(json.loads(self.path.read_bytes()))
        return self.path.read_bytes() if not params else json.dumps(document, ensure_ascii=False).encode("utf-8")

    def parse(self) -> IndexYear:
        return parse_year_grid(self.answer(), index=self.index, year=self.year, language=self.language,
                               source=self.path.name)


def recordings_dir():
    from importlib import resources
    from pathlib import Path

    return Path(str(resources.files("b3_dagster") / "recordings" / "b3_index_history"))


def recorded_grids(directory=None) -> list[RecordedGrid]:
    """Every shipped year-grid answer, with the request it answered."""
    folder = (directory or recordings_dir()) / "json"
    found = []
    for path in sorted(folder.glob("*.json")):
        if path.name in RECORDED_BARE_GRIDS:
            found.append(RecordedGrid(*RECORDED_BARE_GRIDS[path.name], path))
            continue
        _, params = unwrap_answer(json.loads(path.read_bytes()))
        if {"index", "year", "language"} <= set(params):
            found.append(RecordedGrid(params["index"], int(params["year"]), params["language"], path))
    return found


def replay_answer(grids: list[RecordedGrid], token: str) -> tuple[int, bytes]:
    """The status and body a local replay sends for ``ENDPOINT_PATH + token``: the recorded answer to that exact
    (index, year, language), or 404 saying what is recorded (never a made-up grid)."""
    try:
        payload = decode_payload(token)
        wanted = (str(payload["index"]), int(payload["year"]), str(payload["language"]))
    except (ValueError, KeyError, TypeError):
        return 400, b'{"message":"bad request payload"}'
    for grid in grids:
        if (grid.index, grid.year, grid.language) == wanted:
            return 200, grid.answer()
    held = sorted(f"{g.index} {g.year} {g.language}" for g in grids)
    return 404, json.dumps({"message": f"no recorded answer for {wanted}; recorded: {held}"}).encode()
