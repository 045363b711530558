"""B3's ``GetPortfolioDay`` API: the day's IBOV portfolio by sector, fetched page by page and parsed strictly."""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import pandas as pd
import requests

from b3_dagster.errors import (
    B3FormatError,
    B3ResponseError,
    B3Unreachable,
    BodyTooLarge,
    FetchDeadlineExceeded,
    NetworkError,
)
from b3_dagster.model import RAW_COLUMNS, RAW_DATE_COLUMN, RAW_SCHEMA, PortfolioSnapshot
from b3_dagster.settings import B3_HOST
from b3_dagster.sources.b3_format import (
    clean_text,
    encode_payload,
    int_or_none,
    parse_json_body,
    parse_date,
    parse_decimal,
    parse_integer,
)
from b3_dagster.sources.http import (
    Deadline,
    HttpPolicy,
    get,
    http_session,
)

log = logging.getLogger(__name__)

ENDPOINT_PATH = "/indexProxy/indexCall/GetPortfolioDay/"
RESULT_FIELDS = ("segment", "cod", "asset", "type", "part", "partAcum", "theoricalQty")
MAX_PAGES = 1000  # a safety stop: IBOV has about 90 rows
# A page of ~90 rows is about 30 KB; 4 MiB leaves room for any index B3 publishes and still stops a runaway body.
DEFAULT_MAX_PAGE_BYTES = 4 * 1024 * 1024
DEFAULT_PAGE_SIZE = 120  # rows per page asked of B3; pagination follows


def portfolio_payload(page_number: int, page_size: int, language: str = "pt-br", index: str = "IBOV",
                      segment: str = "2") -> dict[str, Any]:
    return {"language": language, "pageNumber": page_number, "pageSize": page_size, "index": index,
            "segment": segment}


def _field(mapping: dict, name: str, *, page: int, where: str) -> Any:
    if not isinstance(mapping, dict) or name not in mapping:
        raise B3ResponseError(f"{where} lacks {name!r} (schema change?)", page=page, field=name)
    return mapping[name]


@dataclass
class ParsedPage:
    page_number: int
    total_pages: int | None
    total_records: int | None
    portfolio_date: Any
    reductor: float | None
    theoretical_qty_total: int | None
    rows: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)


def parse_page(body: bytes | str, *, page: int, language: str = "pt-br") -> ParsedPage:
    """Parse one ``GetPortfolioDay`` answer. Raises ``B3ResponseError`` naming the page and field at fault."""
    document = _document(body, page)
    header = _field(document, "header", page=page, where="the answer")
    results = _field(document, "results", page=page, where="the answer")
    page_info = document.get("page") or {}
    if not isinstance(results, list):
        raise B3ResponseError(f"'results' is {type(results).__name__}, not a list", page=page, field="results")
    if not isinstance(header, dict):
        raise B3ResponseError("'header' is not an object (no portfolio published?)", page=page, field="header")
    portfolio_date, reductor, qty_total, warnings = _header(header, page, language)
    rows = [_row(item, f"result #{position}", portfolio_date, page, language)
            for position, item in enumerate(results, start=1)]
    return ParsedPage(
        page_number=int_or_none(page_info.get("pageNumber")) or page,
        total_pages=int_or_none(page_info.get("totalPages")),
        total_records=int_or_none(page_info.get("totalRecords")),
        portfolio_date=portfolio_date,
        reductor=reductor,
        theoretical_qty_total=qty_total,
        rows=rows,
        warnings=warnings,
    )


def _document(body: bytes | str, page: int) -> dict:
    document = parse_json_body(body, lambda reason: B3ResponseError(reason, page=page))
    if not isinstance(document, dict):
        raise B3ResponseError(f"expected a JSON object, got {type(document).__name__}", page=page)
    return document


def _header(header: dict, page: int, language: str) -> tuple[dt.date, float | None, int | None, list[str]]:
    """(portfolio date, reductor, theoretical quantity total, warnings) from the answer's header."""
    date_text = _field(header, "date", page=page, where="the header")
    try:
        portfolio_date = parse_date(date_text, language)
    except B3FormatError as error:
        raise B3ResponseError(str(error), page=page, field="header.date") from error

    warnings: list[str] = []
    reductor = None
    if header.get("reductor") not in (None, ""):
        try:
            reductor = parse_decimal(header["reductor"], language)
        except B3FormatError:
            # B3 has published malformed reductors before (a formatting glitch); the rows are still valid.
            warnings.append(f"page {page}: unparseable header reductor {header['reductor']!r} kept as null")
    qty_total = None
    if header.get("theoricalQty") not in (None, ""):
        try:
            qty_total = parse_integer(header["theoricalQty"], language)
        except B3FormatError as error:
            raise B3ResponseError(str(error), page=page, field="header.theoricalQty") from error
    return portfolio_date, reductor, qty_total, warnings


def _row(item: Any, where: str, portfolio_date: dt.date, page: int, language: str) -> dict[str, Any]:
    """One ticker of the answer (RAW_COLUMNS), or ``B3ResponseError`` naming the row and field at fault."""
    if not isinstance(item, dict):
        raise B3ResponseError(f"{where} is not an object", page=page)
    row: dict[str, Any] = {}
    for name in ("segment", "cod", "asset", "type"):
        value = _field(item, name, page=page, where=where)
        if not isinstance(value, str) or not value.strip():
            if name == "segment":
                raise B3ResponseError(f"{where} has an empty sector (segment {value!r}); this client asks for"
                                      " segment 2, which always carries sectors", page=page, field=name)
            if name in ("cod", "type"):
                raise B3ResponseError(f"{where} has an empty {name!r}: {value!r}", page=page, field=name)
            value = value or ""
        row[name] = clean_text(value)
    try:
        row["part"] = parse_decimal(_field(item, "part", page=page, where=where), language)
        acum = _field(item, "partAcum", page=page, where=where)
        row["partAcum"] = None if acum in (None, "") else parse_decimal(acum, language)
        row["theoricalQty"] = parse_integer(_field(item, "theoricalQty", page=page, where=where), language)
    except B3FormatError as error:
        raise B3ResponseError(f"{where} ({row.get('cod')}): {error}", page=page) from error
    for name in ("part", "theoricalQty"):  # a weight or quantity of zero or less is no portfolio position
        if row[name] <= 0:
            raise B3ResponseError(f"{where} ({row['cod']}): {name} is {row[name]}, it must be greater than 0",
                                  page=page, field=name)
    row[RAW_DATE_COLUMN] = portfolio_date
    return row



def rows_to_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Typed raw frame (RAW_SCHEMA), in B3's row order."""
    frame = pd.DataFrame(rows, columns=RAW_COLUMNS)
    return frame.astype({"part": "float64", "partAcum": "float64", "theoricalQty": "int64"})


class B3PortfolioClient:
    """Fetches the IBOV portfolio that B3 publishes *now* (B3 serves only the current portfolio)."""

    def __init__(self, base_url: str = B3_HOST, page_size: int = DEFAULT_PAGE_SIZE, policy: HttpPolicy | None = None,
                 language: str = "pt-br", index: str = "IBOV", segment: str = "2",
                 session: requests.Session | None = None, on_page: Callable[[int, int | None], None] | None = None):
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.page_size = page_size
        # deadlines, retries and the size cap; one fetch (all its pages and retries) shares one deadline
        self.policy = policy or HttpPolicy(max_bytes=DEFAULT_MAX_PAGE_BYTES)
        self.language = language
        self.index = index
        self.segment = segment
        self.session = session or http_session()
        self.on_page = on_page

    def page_url(self, page_number: int) -> str:
        payload = portfolio_payload(page_number, self.page_size, self.language, self.index, self.segment)
        return f"{self.base_url}{ENDPOINT_PATH}{encode_payload(payload)}"

    def fetch_page(self, page_number: int, deadline: Deadline | None = None) -> ParsedPage:
        url = self.page_url(page_number)
        try:
            answer = get(self.session, url, self.policy, deadline)
        except (NetworkError, FetchDeadlineExceeded, BodyTooLarge) as error:
            raise B3Unreachable(error, page=page_number) from error
        if answer.status != 200:
            retried = f" after {answer.attempts} attempts" if answer.attempts > 1 else ""
            raise B3ResponseError(f"HTTP {answer.status}{retried}: {answer.text[:200]!r}", page=page_number, url=url)
        return parse_page(answer.body, page=page_number, language=self.language)

    def fetch(self) -> PortfolioSnapshot:
        """All pages of the current portfolio: follows pagination until a short page or the last page, all within
        one deadline (``policy.fetch_deadline``)."""
        pages: list[ParsedPage] = []
        page_number = 1
        deadline = Deadline(self.policy.fetch_deadline)
        while True:
            parsed = self.fetch_page(page_number, deadline)
            if pages and parsed.portfolio_date != pages[0].portfolio_date:
                raise B3ResponseError(f"page {page_number} is for {parsed.portfolio_date} but page 1 was for "
                                      f"{pages[0].portfolio_date}: B3 published a new portfolio mid-download; "
                                      "run again", page=page_number, field="header.date")
            pages.append(parsed)
            if self.on_page:
                self.on_page(page_number, parsed.total_pages)
            last_by_metadata = parsed.total_pages is not None and page_number >= parsed.total_pages
            if len(parsed.rows) < self.page_size or last_by_metadata:
                break
            page_number += 1
            if page_number > MAX_PAGES:
                raise B3ResponseError(f"more than {MAX_PAGES} pages: pagination does not end", page=page_number)

        rows = [row for parsed in pages for row in parsed.rows]
        if not rows:
            raise B3ResponseError("'results' is empty: B3 published no portfolio rows", page=1, field="results")
        expected = pages[0].total_records
        if expected is not None and expected != len(rows):
            raise B3ResponseError(f"page metadata announces {expected} records but {len(pages)} page(s) held "
                                  f"{len(rows)}", page=len(pages), field="page.totalRecords")
        log.info("B3 portfolio of %s: %d rows in %d page(s)", pages[0].portfolio_date, len(rows), len(pages))
        payload = portfolio_payload(1, self.page_size, self.language, self.index, self.segment)
        return PortfolioSnapshot(
            portfolio_date=pages[0].portfolio_date,
            rows=rows_to_frame(rows),
            reductor=pages[0].reductor,
            theoretical_qty_total=pages[0].theoretical_qty_total,
            source=f"{self.base_url}{ENDPOINT_PATH} {json.dumps(payload)}",
            warnings=tuple(w for parsed in pages for w in parsed.warnings),
        )


assert set(RESULT_FIELDS) | {RAW_DATE_COLUMN} == set(RAW_SCHEMA.names)
