"""Yahoo Finance's chart API (``/v8/finance/chart/<symbol>``): daily OHLCV bars of the IBOVESPA index (``^BVSP``).

Why the chart API over plain HTTP and not yfinance: yfinance scrapes Yahoo's pages, needs cookies and a "crumb",
and brings its own network stack (curl_cffi), so its requests cannot be replayed by a local server in tests or
retried by our own session. The chart API answers one GET per date range with the JSON parsed here, which a local
server can replay byte for byte (see ``serve_chart_recordings``).

Every answer is validated before anything is written: no bars, a null field, high < low, a bar dated off the B3
calendar, a duplicated day or Yahoo's error JSON raise one ``YahooChartError`` naming the symbol, the URL and the
bar (date and field) at fault.

Time: Yahoo stamps daily bars at the session open, 13:00 UTC (10:00 in São Paulo). The date of a bar is taken in
the exchange's time zone (``meta.exchangeTimezoneName``, an IANA name; ``gmtoffset`` only as a fallback, since
Yahoo still reported a DST offset for B3 in 2022 although Brazil dropped DST in 2019).

Provisional bars: the newest bar can be unfinished (intraday or not yet finalised: fractional prices and volume 0)
and Yahoo replaces it later. Such a bar is returned apart, in ``ChartHistory.provisional``, never among the final
bars, so raw partitions only ever receive finalised data. See ``is_provisional`` for the rule.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pandas as pd
import pyarrow as pa
import requests

from b3_dagster.calendar import B3_TIMEZONE, is_session
from b3_dagster.errors import (
    BodyTooLarge,
    FetchDeadlineExceeded,
    NetworkError,
    ProvisionalBarError,
    YahooChartError,
    YahooUnreachable,
)
from b3_dagster.model import BAR_DATE, BAR_SCHEMA
from b3_dagster.settings import YAHOO_HOST
from b3_dagster.sources.http import (
    HttpPolicy,
    get,
    http_session,
)

CHART_PATH = "/v8/finance/chart/"
IBOV_SYMBOL = "^BVSP"
# The whole ^BVSP history since 1993 is about 1 MB of chart JSON; 32 MiB still stops a runaway body.
DEFAULT_MAX_CHART_BYTES = 32 * 1024 * 1024
PRICE_FIELDS = ("open", "high", "low", "close")
QUOTE_FIELDS = (*PRICE_FIELDS, "volume")


@dataclass(frozen=True)
class ChartHistory:
    symbol: str
    bars: pd.DataFrame  # final bars, BAR_COLUMNS, one per session, ascending
    provisional: pd.DataFrame  # the newest bar when it is not final (0 or 1 row), same columns
    exchange_timezone: str
    regular_market_time: dt.datetime | None
    url: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    def days(self) -> list[dt.date]:
        return list(self.bars[BAR_DATE])

    def select(self, days: list[dt.date]) -> pd.DataFrame:
        """The final bars of exactly ``days``; a day that is missing or only provisional raises."""
        wanted = set(days)
        provisional = sorted(wanted & set(self.provisional[BAR_DATE]))
        if provisional:
            raise ProvisionalBarError(
                f"the bar of {provisional[0]} is provisional ({self.notes[-1] if self.notes else 'not final'}); "
                "nothing was written: run again after Yahoo finalises it, or leave that day out of the range",
                symbol=self.symbol, url=self.url, day=provisional[0])
        missing = sorted(wanted - set(self.bars[BAR_DATE]))
        if missing:
            raise YahooChartError(
                f"no bar for B3 session(s) {[d.isoformat() for d in missing[:10]]}"
                f"{' ...' if len(missing) > 10 else ''} ({len(missing)} missing of {len(wanted)} requested; Yahoo "
                f"returned {len(self.bars)} bars from {_span(self.bars)}); nothing was written",
                symbol=self.symbol, url=self.url)
        return self.bars[self.bars[BAR_DATE].isin(wanted)].reset_index(drop=True)


def _span(bars: pd.DataFrame) -> str:
    return f"{bars[BAR_DATE].min()} to {bars[BAR_DATE].max()}" if len(bars) else "nothing"


def chart_window(start: dt.date, end: dt.date, timezone: str = B3_TIMEZONE) -> tuple[int, int]:
    """``period1``/``period2`` for the sessions ``start``..``end`` (both included): local midnight of ``start`` to
    local midnight after ``end``, in epoch seconds."""
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    zone = ZoneInfo(timezone)
    first = dt.datetime.combine(start, dt.time(), zone)
    after = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), zone)
    return int(first.timestamp()), int(after.timestamp())


def chart_url(base_url: str, symbol: str, start: dt.date, end: dt.date) -> str:
    period1, period2 = chart_window(start, end)
    return (f"{base_url.rstrip('/')}{CHART_PATH}{quote(symbol, safe='')}?period1={period1}&period2={period2}"
            "&interval=1d&events=history&includeAdjustedClose=true")


# ---------------------------------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------------------------------
def _yahoo_error(document: Any) -> tuple[str, str] | None:
    """Yahoo's error JSON: ``{"chart": {"result": null, "error": {...}}}`` or ``{"finance": {"error": {...}}}``."""
    if not isinstance(document, dict):
        return None
    for root in ("chart", "finance"):
        error = document.get(root, {}).get("error") if isinstance(document.get(root), dict) else None
        if error:
            if isinstance(error, dict):
                return str(error.get("code", "?")), str(error.get("description", ""))
            return "?", str(error)
    return None


def _exchange_zone(meta: dict, fail: Callable[..., YahooChartError]) -> tuple[dt.tzinfo, str]:
    name = meta.get("exchangeTimezoneName")
    if isinstance(name, str) and name:
        try:
            return ZoneInfo(name), name
        except (KeyError, ValueError) as error:
            raise fail(f"unknown exchangeTimezoneName {name!r}", field="meta.exchangeTimezoneName") from error
    offset = meta.get("gmtoffset")
    if isinstance(offset, (int, float)) and not isinstance(offset, bool):
        return dt.timezone(dt.timedelta(seconds=int(offset))), f"UTC{int(offset) / 3600:+g}h"
    raise fail("meta has neither exchangeTimezoneName nor gmtoffset: cannot date the bars", field="meta")


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def is_provisional(bar: dict[str, Any], regular_market_time: dt.datetime | None, zone: dt.tzinfo,
                   regular_end: dt.datetime | None) -> bool:
    """Whether the newest bar is unfinished.

    - Yahoo's last update (``regularMarketTime``) came before that session's regular close
      (``currentTradingPeriod.regular.end``, when it is the bar's day): the session was still trading; or
    - the bar has volume 0 and a fractional price, and it is the session of Yahoo's last update (or the answer has no
      ``regularMarketTime``): the recorded unfinalised bars look exactly like this (whole points with real volume
      once finalised). Old bars (before 2002-07-02 volume is always 0, before 1997-03 prices are fractional) are not
      affected because they are far from ``regularMarketTime``.
    """
    day = bar[BAR_DATE]
    if regular_market_time is not None:
        last_update_day = regular_market_time.astimezone(zone).date()
        if last_update_day != day:
            return False
        if regular_end is not None and regular_end.astimezone(zone).date() == day and regular_market_time < regular_end:
            return True
    fractional = any(bar[name] != math.floor(bar[name]) for name in PRICE_FIELDS)
    return bar["volume"] == 0 and fractional


Fail = Callable[..., "YahooChartError"]  # message, day=..., field=... -> the error naming the symbol and URL


def parse_chart(body: bytes | str, *, symbol: str, url: str | None = None,
                session_check: Callable[[dt.date], bool] = is_session) -> ChartHistory:
    """Validate one chart answer and return its bars. Raises ``YahooChartError`` at the first problem."""

    def fail(message: str, **where) -> YahooChartError:
        return YahooChartError(message, symbol=symbol, url=url, **where)

    result, meta = _chart_result(body, symbol, fail)
    zone, zone_name = _exchange_zone(meta, fail)
    timestamps, quote_lists, adjclose = _quote_lists(result, fail)
    rows = [_bar(position, stamp, quote_lists, adjclose, zone, fail) for position, stamp in enumerate(timestamps)]
    _check_days(rows, session_check, zone_name, fail)
    regular_market_time, provisional_rows, notes = _split_provisional(rows, meta, zone)
    return ChartHistory(symbol=symbol, bars=_frame(rows), provisional=_frame(provisional_rows),
                        exchange_timezone=zone_name, regular_market_time=regular_market_time, url=url or "",
                        notes=tuple(notes))


def _chart_result(body: bytes | str, symbol: str, fail: Fail) -> tuple[dict, dict]:
    """The answer's one ``chart.result`` and its ``meta``, checked to be daily bars of ``symbol``."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        snippet = body[:80] if isinstance(body, (bytes, str)) else b""
        raise fail(f"the body is not JSON (rate limited or an error page?): starts with {snippet!r}") from error
    error = _yahoo_error(document)
    if error:
        raise fail(f"Yahoo answered an error: {error[0]}: {error[1]}")
    chart = document.get("chart") if isinstance(document, dict) else None
    results = chart.get("result") if isinstance(chart, dict) else None
    if not isinstance(results, list) or len(results) != 1 or not isinstance(results[0], dict):
        raise fail("expected chart.result to be a list with one result", field="chart.result")
    result = results[0]
    meta = result.get("meta") if isinstance(result.get("meta"), dict) else {}
    answered_symbol = meta.get("symbol")
    if answered_symbol is not None and answered_symbol != symbol:
        raise fail(f"the answer is for {answered_symbol!r}, not {symbol!r}", field="meta.symbol")
    if meta.get("dataGranularity") not in (None, "1d"):
        raise fail(f"expected daily bars, got granularity {meta.get('dataGranularity')!r}",
                   field="meta.dataGranularity")
    return result, meta


def _quote_lists(result: dict, fail: Fail) -> tuple[list, dict[str, list], list | None]:
    """(timestamps, {quote field: values}, adjclose values or None), each list with one value per timestamp."""
    timestamps = result.get("timestamp")
    if not timestamps:
        raise fail("the answer holds no bars (no 'timestamp'): nothing traded in the window, or a wrong window",
                   field="timestamp")
    indicators = result.get("indicators") or {}
    quotes = indicators.get("quote") if isinstance(indicators, dict) else None
    if not isinstance(quotes, list) or len(quotes) != 1 or not isinstance(quotes[0], dict):
        raise fail("expected indicators.quote to be a list with one object", field="indicators.quote")
    quote_lists = {}
    for name in QUOTE_FIELDS:
        values = quotes[0].get(name)
        if not isinstance(values, list) or len(values) != len(timestamps):
            raise fail(f"indicators.quote[0].{name} is missing or does not have one value per timestamp "
                       f"({len(timestamps)})", field=name)
        quote_lists[name] = values
    adjclose_blocks = indicators.get("adjclose") or [{}]
    adjclose = adjclose_blocks[0].get("adjclose") if isinstance(adjclose_blocks[0], dict) else None
    if adjclose is not None and (not isinstance(adjclose, list) or len(adjclose) != len(timestamps)):
        raise fail("indicators.adjclose does not have one value per timestamp", field="adjclose")
    return timestamps, quote_lists, adjclose


def _bar(position: int, stamp: Any, quote_lists: dict[str, list], adjclose: list | None, zone: dt.tzinfo,
         fail: Fail) -> dict[str, Any]:
    """One bar (BAR_SCHEMA's fields), its date taken in the exchange's time zone."""
    if not isinstance(stamp, int) or isinstance(stamp, bool):
        raise fail(f"timestamp #{position} is {stamp!r}, not epoch seconds", field="timestamp")
    day = dt.datetime.fromtimestamp(stamp, dt.timezone.utc).astimezone(zone).date()
    row: dict[str, Any] = {BAR_DATE: day, "timestamp": stamp}
    nulls = [name for name in QUOTE_FIELDS if _number(quote_lists[name][position]) is None]
    if nulls:
        raise fail(f"null or non-numeric {nulls} (values {[quote_lists[n][position] for n in nulls]})",
                   day=day, field=nulls[0])
    for name in PRICE_FIELDS:
        row[name] = _number(quote_lists[name][position])
        if row[name] <= 0:
            raise fail(f"{name} is {row[name]}, not a positive index level", day=day, field=name)
    volume = _number(quote_lists["volume"][position])
    if volume < 0 or volume != math.floor(volume):
        raise fail(f"volume is {volume}, not a whole non-negative number", day=day, field="volume")
    row["volume"] = int(volume)
    row["adjclose"] = _number(adjclose[position]) if adjclose is not None else None
    if row["high"] < row["low"]:
        raise fail(f"high {row['high']} is below low {row['low']}", day=day, field="high")
    return row


def _check_days(rows: list[dict[str, Any]], session_check: Callable[[dt.date], bool], zone_name: str,
                fail: Fail) -> None:
    """One bar per day, in time order, each on a B3 session."""
    days = [row[BAR_DATE] for row in rows]
    duplicated = sorted({day for day in days if days.count(day) > 1})
    if duplicated:
        raise fail(f"two bars on the same day(s) {duplicated[:5]}", day=duplicated[0], field="timestamp")
    if days != sorted(days):
        raise fail("bars are not in time order", field="timestamp")
    for row in rows:
        try:
            open_day = session_check(row[BAR_DATE])
        except ValueError as error:  # outside the calendar's range
            raise fail(str(error), day=row[BAR_DATE], field="timestamp") from error
        if not open_day:
            raise fail(f"{row[BAR_DATE]} ({row[BAR_DATE]:%A}) is not a B3 session (stamp {row['timestamp']}, "
                       f"{zone_name})", day=row[BAR_DATE], field="timestamp")


def _split_provisional(rows: list[dict[str, Any]], meta: dict,
                       zone: dt.tzinfo) -> tuple[dt.datetime | None, list[dict[str, Any]], list[str]]:
    """Take the newest bar out of ``rows`` when it looks unfinished (``is_provisional``): (Yahoo's last update,
    the provisional bars, notes saying why)."""
    market_time = meta.get("regularMarketTime")
    regular_market_time = (dt.datetime.fromtimestamp(market_time, dt.timezone.utc)
                           if isinstance(market_time, int) and not isinstance(market_time, bool) else None)
    regular = ((meta.get("currentTradingPeriod") or {}).get("regular") or {})
    regular_end = (dt.datetime.fromtimestamp(regular["end"], dt.timezone.utc)
                   if isinstance(regular.get("end"), int) else None)
    notes: list[str] = []
    provisional_rows: list[dict[str, Any]] = []
    if is_provisional(rows[-1], regular_market_time, zone, regular_end):
        provisional_rows.append(rows.pop())
        last = provisional_rows[0]
        notes.append(f"newest bar {last[BAR_DATE]} looks unfinished (close {last['close']}, volume {last['volume']}, "
                     f"Yahoo's last update {regular_market_time.isoformat() if regular_market_time else 'unknown'})")
    return regular_market_time, provisional_rows, notes


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    table = pa.Table.from_pylist(rows, schema=BAR_SCHEMA) if rows else BAR_SCHEMA.empty_table()
    return table.to_pandas(date_as_object=True)


class YahooChartClient:
    """Daily bars of one symbol for a range of sessions: one GET for the whole range."""

    def __init__(self, base_url: str = YAHOO_HOST, symbol: str = IBOV_SYMBOL, policy: HttpPolicy | None = None,
                 session: requests.Session | None = None):
        self.base_url = base_url.rstrip("/")
        self.symbol = symbol
        self.policy = policy or HttpPolicy(max_bytes=DEFAULT_MAX_CHART_BYTES)
        self.session = session or http_session()

    def url(self, start: dt.date, end: dt.date) -> str:
        return chart_url(self.base_url, self.symbol, start, end)

    def fetch_daily(self, start: dt.date, end: dt.date) -> ChartHistory:
        url = self.url(start, end)
        try:
            answer = get(self.session, url, self.policy)
        except (NetworkError, FetchDeadlineExceeded, BodyTooLarge) as error:
            hint = " Check the network (or B3_YAHOO_BASE_URL) and run again." if isinstance(error, NetworkError) else ""
            raise YahooUnreachable(f"{error}; nothing was written.{hint}", symbol=self.symbol, url=url) from error
        if answer.status != 200:
            error = None
            try:
                error = _yahoo_error(json.loads(answer.body))
            except ValueError:
                pass
            detail = f"{error[0]}: {error[1]}" if error else repr(answer.text[:200])
            retried = f" after {answer.attempts} attempts" if answer.attempts > 1 else ""
            raise YahooChartError(f"HTTP {answer.status}{retried}: {detail}", symbol=self.symbol, url=url)
        history = parse_chart(answer.body, symbol=self.symbol, url=url)
        period1, period2 = chart_window(start, end)
        outside = [day for day, stamp in zip(history.bars[BAR_DATE], history.bars["timestamp"])
                   if not period1 <= stamp < period2]
        if outside:
            raise YahooChartError(f"bars outside the requested window {start}..{end}: {outside[:5]}",
                                  symbol=self.symbol, url=url, day=outside[0])
        return history
