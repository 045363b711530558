"""B3's ``GetStockIndex``: for every listed security, the indices it belongs to (index membership).

    GET /indexProxy/indexCall/GetStockIndex/<base64 {"pageNumber":1,"pageSize":9999}>
    {"page": {"pageNumber": 1, "pageSize": 9999, "totalRecords": 537, "totalPages": 1},
     "header": {"update": "2025-04-07", "startMonth": 1, "endMonth": 4, "year": 2025},
     "results": [{"company": "3TENTOS", "spotlight": "ON   NM", "code": "TTEN3",
                  "indexes": "AGFS,IBRA,ICO2,ICON,IGCT,IGCX,IGNM,ITAG,SMLL"}, ...]}

``indexes`` is one comma-joined string (empty for a security in no index); ``spotlight`` is the padded share type;
``header.update`` is the day of the list and ``startMonth``/``endMonth`` the four-month validity window of the
portfolios. ``membership_frame`` makes it one row per (security, index): the long shape that a table and a join with
an index's portfolio need. ``rules.indices.compare_with_portfolio`` checks the members of one index against that
index's portfolio of the same day (real answers: the IBOV members equal the IBOV GetPortfolioDay portfolio exactly).
"""

from __future__ import annotations

from pathlib import Path
import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa
import requests
import yaml

from b3_dagster.errors import B3StockIndexError
from b3_dagster.model import INDEX_CODE, MEMBERSHIP_COLUMNS, MEMBERSHIP_DATE, MEMBERSHIP_SCHEMA
from b3_dagster.settings import B3_HOST
from b3_dagster.sources.b3_format import clean_text, encode_payload, int_or_none, parse_json_body
from b3_dagster.sources.http import HttpPolicy, get_ok, http_session

ENDPOINT_PATH = "/indexProxy/indexCall/GetStockIndex/"
PAGE_SIZE = 9999  # B3 lists ~520-660 securities: one page (rb3 asks the same)
INDEX_CODE_PATTERN = re.compile(r"^[A-Z0-9]{3,5}$")
RESULT_FIELDS = ("company", "spotlight", "code", "indexes")


def stock_index_url(base_url: str = B3_HOST, page_number: int = 1, page_size: int = PAGE_SIZE) -> str:
    payload = {"pageNumber": page_number, "pageSize": page_size}
    return f"{base_url.rstrip('/')}{ENDPOINT_PATH}{encode_payload(payload)}"


@dataclass(frozen=True)
class StockIndexAnswer:
    update: dt.date  # header.update
    start_month: int | None
    end_month: int | None
    membership: pd.DataFrame  # MEMBERSHIP_COLUMNS, one row per (security, index)
    securities: int  # rows in B3's answer, including securities in no index
    without_index: tuple[str, ...]  # codes of securities that belong to no index
    source: str
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def members(self, index: str) -> set[str]:
        return set(self.membership.loc[self.membership[INDEX_CODE] == index, "cod"])

    def indices(self) -> list[str]:
        return sorted(set(self.membership[INDEX_CODE]))



def _checked_page(document: Any, source: str) -> tuple[dict, list, dt.date]:
    """The answer's header, its results and its update day, with the page count checked."""
    if not isinstance(document, dict):
        raise B3StockIndexError(source, f"expected a JSON object, got {type(document).__name__}")
    header, results = document.get("header"), document.get("results")
    if not isinstance(header, dict):
        raise B3StockIndexError(source, "the answer has no 'header' object (schema change?)", field="header")
    if not isinstance(results, list) or not results:
        raise B3StockIndexError(source, "'results' is missing, not a list, or empty", field="results")
    try:
        update = dt.date.fromisoformat(str(header.get("update")))
    except ValueError as error:
        raise B3StockIndexError(source, f"header.update {header.get('update')!r} is not a YYYY-MM-DD date",
                                field="header.update") from error
    page = document.get("page") if isinstance(document.get("page"), dict) else {}
    total = int_or_none(page.get("totalRecords"))
    if total is not None and total != len(results):
        raise B3StockIndexError(source, f"page.totalRecords announces {total} securities but 'results' holds "
                                        f"{len(results)} (more pages? ask pageSize {PAGE_SIZE})",
                                field="page.totalRecords")
    return header, results, update


def _security(item: Any, position: int, seen: dict[str, int], source: str) -> tuple[str, list[str]]:
    """One result's security code (not seen before) and the index codes it belongs to."""
    if not isinstance(item, dict):
        raise B3StockIndexError(source, "is not an object", row=position)
    for name in RESULT_FIELDS:
        if name not in item:
            raise B3StockIndexError(source, "is missing (schema change?)", row=position, field=name)
    code = item["code"].strip() if isinstance(item["code"], str) else ""
    if not code:
        raise B3StockIndexError(source, f"empty security code {item['code']!r}", row=position, field="code")
    if code in seen:
        raise B3StockIndexError(source, f"{code} already listed as result #{seen[code]}", row=position,
                                field="code")
    seen[code] = position
    indexes = item["indexes"] if item["indexes"] is not None else ""
    if not isinstance(indexes, str):
        raise B3StockIndexError(source, f"{indexes!r} is not a comma-joined string", row=position,
                                field="indexes")
    codes = [part.strip() for part in indexes.split(",") if part.strip()]
    bad = [part for part in codes if not INDEX_CODE_PATTERN.match(part)]
    if bad:
        raise B3StockIndexError(source, f"{code}: {bad} are not index codes", row=position, field="indexes")
    if len(set(codes)) != len(codes):
        raise B3StockIndexError(source, f"{code}: an index is repeated in {indexes!r}", row=position,
                                field="indexes")
    return code, codes


def parse_stock_index(body: bytes | str, source: str = "B3 GetStockIndex") -> StockIndexAnswer:
    """Parse one answer; every row must have a code and a (possibly empty) comma-joined list of index codes."""
    document = parse_json_body(body, lambda reason: B3StockIndexError(source, reason))
    header, results, update = _checked_page(document, source)
    rows: list[dict[str, Any]] = []
    without: list[str] = []
    seen: dict[str, int] = {}
    for position, item in enumerate(results, start=1):
        code, codes = _security(item, position, seen, source)
        if not codes:
            without.append(code)
        for index in codes:
            rows.append({MEMBERSHIP_DATE: update, "cod": code, "company": clean_text(item["company"] or ""),
                         "spotlight": clean_text(item["spotlight"] or ""), INDEX_CODE: index})
    table = pa.Table.from_pylist(rows, schema=MEMBERSHIP_SCHEMA) if rows else MEMBERSHIP_SCHEMA.empty_table()
    return StockIndexAnswer(update, int_or_none(header.get("startMonth")), int_or_none(header.get("endMonth")),
                            table.to_pandas(date_as_object=True)[MEMBERSHIP_COLUMNS], len(results), tuple(without),
                            source)


def body_from_cassette(text: str | bytes, source: str = "cassette") -> bytes:
    """The response body of the (single) interaction in a VCR cassette, as UTF-8 bytes. The body string is
    YAML-folded across lines, so it is read with a YAML parser."""
    document = yaml.safe_load(text)
    try:
        interactions = document["http_interactions"]
        (interaction,) = interactions
        return interaction["response"]["body"]["string"].encode("utf-8")
    except (KeyError, TypeError, ValueError) as error:
        raise B3StockIndexError(source, f"not a one-interaction VCR cassette: {error!r}") from error


class B3StockIndexClient:
    """One GET for the whole list (pageSize 9999)."""

    def __init__(self, base_url: str = B3_HOST, policy: HttpPolicy | None = None,
                 session: requests.Session | None = None):
        self.base_url = base_url.rstrip("/")
        self.policy = policy or HttpPolicy()
        self.session = session or http_session()

    def fetch(self) -> tuple[bytes, StockIndexAnswer]:
        url = stock_index_url(self.base_url)
        source = f"B3 GetStockIndex [url {url}]"
        answer = get_ok(self.session, url, self.policy, lambda reason: B3StockIndexError(source, reason))
        return answer.body, parse_stock_index(answer.body, source)


def recorded_answers(directory=None) -> dict[str, Path]:
    """The shipped GetStockIndex answers (b3_dagster/recordings/b3_indices/json), by their ``header.update`` date.
    B3 serves only the current list, so a replay serves one of them at a time (like the portfolio replay)."""
    from importlib import resources

    folder = Path(directory) if directory else Path(str(resources.files("b3_dagster") / "recordings" / "b3_indices"
                                                          / "json"))
    found = {}
    for path in sorted(folder.glob("GetStockIndex_*.json")):
        update = json.loads(path.read_bytes())["header"]["update"]
        found[str(update)] = path
    return found
