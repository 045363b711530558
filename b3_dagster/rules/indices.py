"""The index pipeline's rules, pure (as ``quality.py`` holds the portfolio's): B3's published min/max against its
own grid, closes on B3 sessions, the monthly values against the daily closes, the reconciliation of B3's official
closes with Yahoo's, and GetStockIndex's members against an index's portfolio. Each returns a ``CheckOutcome``, or a
``Skipped`` that names why there was nothing to compare; ``defs/`` turns them into Dagster checks."""

from __future__ import annotations

import calendar as month_calendar
import datetime as dt
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable

import exchange_calendars as xcals
import pandas as pd

from b3_dagster.calendar import CALENDAR_NAME, b3_calendar
from b3_dagster.model import (
    CLOSE_DATE,
    CLOSE_DIFFERENCE,
    INDEX_CODE,
    MONTH_COLUMN,
    MONTH_LAST_CLOSE,
    MONTH_MAX,
    MONTH_MIN,
    OFFICIAL_CLOSE,
    WITHIN_TOLERANCE,
    YAHOO_CLOSE,
    YEAR_COLUMN,
)
from b3_dagster.rules.quality import CheckOutcome
from b3_dagster.sources.b3_index_history import IndexYear, on_current_scale
from b3_dagster.sources.b3_stock_index import StockIndexAnswer

# Yahoo's ^BVSP close is B3's close rounded to whole points (from 1997-03-03; one decimal before): measured on the
# recorded years (README, "B3's official index closes"), 0.5 points plus float noise covers every ordinary day. Larger
# differences are Yahoo revisions/stale bars and are named by ``reconcile_with_yahoo``.
YAHOO_TOLERANCE_POINTS = 0.55


@dataclass(frozen=True)
class Skipped:
    """A check that had nothing to compare: it neither passed nor failed, and says why."""

    reason: str
    metadata: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------------------
# B3's yearly grid and its downloads
# ---------------------------------------------------------------------------------------------------------------------
def check_published_min_max(year_data: IndexYear) -> CheckOutcome:
    """Each month's published min and max equal the lowest and highest close of that month's cells (exactly: both
    are B3's own 2-decimal figures). A month without closes must have no published figures."""
    closes = year_data.closes
    months = pd.to_datetime(closes[CLOSE_DATE]).dt.month
    grouped = closes.groupby(months.values)[OFFICIAL_CLOSE]
    lowest, highest = grouped.min(), grouped.max()
    wrong = []
    for row in year_data.published.itertuples(index=False):
        month = getattr(row, MONTH_COLUMN)
        want = (lowest.get(month), highest.get(month))
        have = (getattr(row, MONTH_MIN), getattr(row, MONTH_MAX))
        have = tuple(None if pd.isna(value) else value for value in have)
        if want != have:
            wrong.append(f"{year_data.year}-{month:02d}: published min/max {have}, cells give {want}")
    months_with_closes = int(lowest.size)
    return CheckOutcome(
        passed=not wrong and months_with_closes > 0,
        description=(f"{year_data.index} {year_data.year}: the published min and max of all {months_with_closes} "
                     "month(s) with closes equal the grid's cells" if not wrong and months_with_closes else
                     f"{year_data.index} {year_data.year}: no closes" if not months_with_closes else
                     f"{year_data.index} {year_data.year}: {len(wrong)} month(s) disagree: {wrong[:4]}"),
        metadata={"index": year_data.index, "year": year_data.year, "months_with_closes": months_with_closes,
                  "months_wrong": len(wrong)},
    )


@lru_cache(maxsize=8)
def _calendar_from(year: int) -> xcals.ExchangeCalendar:
    """BVMF from ``year`` on (the project's calendar starts 20 years back; the grids go back to 1968)."""
    return xcals.get_calendar(CALENDAR_NAME, start=f"{year}-01-01")


def year_sessions(year: int, through: dt.date | None = None) -> list[dt.date] | None:
    """B3 sessions of ``year`` up to ``through`` (default: the year's end), or None when exchange_calendars does
    not cover the year."""
    end = dt.date(year, 12, 31) if through is None else min(through, dt.date(year, 12, 31))
    try:
        project = b3_calendar()
        calendar = project if dt.date(year, 1, 1) >= project.first_session.date() else _calendar_from(year)
    except (ValueError, xcals.errors.DateOutOfBounds):  # the library's bounds (e.g. a start before its data)
        return None
    if pd.Timestamp(end) > calendar.last_session:
        return None
    start = max(pd.Timestamp(dt.date(year, 1, 1)), calendar.first_session)
    return [ts.date() for ts in calendar.sessions_in_range(start, pd.Timestamp(end))]


def check_closes_on_sessions(year_data: IndexYear, through: dt.date | None = None, *,
                             before_calendar: bool = False) -> CheckOutcome | Skipped:
    """Every close falls on a B3 session of exchange_calendars (BVMF), and every session of the year up to
    ``through`` has a close. ``through`` defaults to the last close: a partial (current) year is complete up to
    the day it was fetched; pass the fetch day to also catch a missing latest session.

    Years that start before the project's calendar (``b3_dagster.calendar``: 20 years back) are skipped unless
    ``before_calendar``: exchange_calendars lacks old B3 holidays (measured on the real grids: 1997-03-27,
    1997-07-09 and 1998-04-09 are sessions for it and not for B3; 1968 differs on 14 days), so there the
    calendar, not B3, would be wrong."""
    closes = year_data.closes
    if closes.empty:
        return Skipped(f"{year_data.index} {year_data.year}: no closes to check")
    first_covered = b3_calendar().first_session.date()
    if dt.date(year_data.year, 1, 1) < first_covered and not before_calendar:
        return Skipped(f"{year_data.index} {year_data.year}: before {first_covered}, where the project's B3 "
                       "calendar starts (exchange_calendars lacks some older B3 holidays)")
    through = through or year_data.last_day
    expected = year_sessions(year_data.year, through)
    if expected is None:
        return Skipped(f"{year_data.index} {year_data.year}: exchange_calendars has no BVMF sessions through "
                       f"{through}")
    present = set(closes[CLOSE_DATE])
    sessions = set(expected)
    off_calendar = sorted(day for day in present if day not in sessions and day <= through)
    missing = sorted(sessions - present)
    passed = not off_calendar and not missing
    text = (f"{year_data.index} {year_data.year}: {len(present)} closes, each on a B3 session, and every one of the "
            f"{len(sessions)} sessions through {through} has a close" if passed else
            f"{year_data.index} {year_data.year}: closes on non-sessions {[d.isoformat() for d in off_calendar[:10]]}; "
            f"sessions without a close {[d.isoformat() for d in missing[:10]]}")
    return CheckOutcome(passed, text, {"index": year_data.index, "year": year_data.year, "closes": len(present),
                                       "sessions": len(sessions), "closes_off_calendar": len(off_calendar),
                                       "sessions_without_close": len(missing),
                                       "off_calendar_days": [d.isoformat() for d in off_calendar],
                                       "missing_days": [d.isoformat() for d in missing]})


def _month_complete(closes: pd.DataFrame, year: int, month: int) -> bool:
    """The daily closes hold the whole month: a close follows in the next calendar month (the series runs on), or the
    month's last B3 session (exchange_calendars) has a close. A download made mid-month holds neither."""
    days = set(closes[CLOSE_DATE])
    end = dt.date(year, month, month_calendar.monthrange(year, month)[1])
    following = [day for day in days if day > end]
    if following and (min(following).year, min(following).month) == ((year, month + 1) if month < 12 else
                                                                      (year + 1, 1)):
        return True
    sessions = year_sessions(year, end)
    in_month = [day for day in sessions or [] if day.month == month]
    return bool(in_month) and in_month[-1] in days


def check_monthly_matches_daily(monthly: pd.DataFrame, closes: pd.DataFrame,
                                in_progress: set[tuple[str, int, int]] | None = None) -> CheckOutcome | Skipped:
    """Each month's "Evolução Mensal" value equals that month's last daily close, where the daily closes hold the
    whole month (a daily download made mid-month is left out of the comparison and named).

    ``in_progress``: (index, year, month) that may have been in progress when the monthly file was downloaded (by
    default each index's last month): there B3 wrote the latest close so far, so the value must equal the close of
    some day of that month, and the month is named."""
    if closes.empty or monthly.empty:
        return Skipped("no daily closes or no monthly values to compare")
    if in_progress is None:
        in_progress = _last_month_of_each_index(monthly)
    frame = closes.copy()
    stamps = pd.to_datetime(frame[CLOSE_DATE])
    frame[YEAR_COLUMN], frame[MONTH_COLUMN] = stamps.dt.year, stamps.dt.month
    by_month = {key: group.sort_values(CLOSE_DATE) for key, group in
                frame.groupby([INDEX_CODE, YEAR_COLUMN, MONTH_COLUMN])}
    compared, different, partial_daily, month_in_progress = 0, [], [], []
    for row in monthly.itertuples(index=False):
        index, year, month = getattr(row, INDEX_CODE), int(getattr(row, YEAR_COLUMN)), int(getattr(row, MONTH_COLUMN))
        value = float(getattr(row, MONTH_LAST_CLOSE))
        days = by_month.get((index, year, month))
        if days is None:
            continue
        label = f"{index} {year}-{month:02d}"
        if not _month_complete(frame[frame[INDEX_CODE] == index], year, month):
            partial_daily.append(f"{label} (daily closes end {days[CLOSE_DATE].iloc[-1]})")
            continue
        compared += 1
        last_close = float(days[OFFICIAL_CLOSE].iloc[-1])
        if abs(value - last_close) <= 0.005:
            continue
        same = days[(days[OFFICIAL_CLOSE] - value).abs() <= 0.005]
        if (index, year, month) in in_progress and not same.empty:
            month_in_progress.append(f"{label}: monthly {value} is the close of {same[CLOSE_DATE].iloc[-1]} (the "
                                     f"month was in progress at download; it ended at {last_close})")
            continue
        different.append(f"{label}: monthly {value} vs daily {last_close}")
    return _monthly_outcome(compared, different, partial_daily, month_in_progress)


def _last_month_of_each_index(monthly: pd.DataFrame) -> set[tuple[str, int, int]]:
    last = monthly.sort_values([YEAR_COLUMN, MONTH_COLUMN]).groupby(INDEX_CODE).tail(1)
    return {(row[0], int(row[1]), int(row[2])) for row in
            last[[INDEX_CODE, YEAR_COLUMN, MONTH_COLUMN]].itertuples(index=False)}


def _monthly_outcome(compared: int, different: list[str], partial_daily: list[str],
                     month_in_progress: list[str]) -> CheckOutcome | Skipped:
    if not compared:
        return Skipped("the monthly values and the daily closes share no whole month"
                       + (f" (daily partial: {partial_daily[:3]})" if partial_daily else ""))
    text = (f"{compared} month(s) compared; the monthly value equals the month's last daily close in all"
            if not different else f"{len(different)} of {compared} month(s) differ: {different[:5]}")
    if month_in_progress:
        text += f"; in progress at download: {month_in_progress}"
    if partial_daily:
        text += f"; not compared (daily download made mid-month): {partial_daily[:3]}"
    return CheckOutcome(not different, text,
                        {"months_compared": compared, "months_different": len(different), "different": different,
                         "months_in_progress_at_download": month_in_progress,
                         "months_partial_in_daily": partial_daily})


# ---------------------------------------------------------------------------------------------------------------------
# Reconciliation with Yahoo
# ---------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reconciliation:
    days: pd.DataFrame  # data, fechamento (B3, current scale), fechamento_yahoo, diferenca, dentro_tolerancia
    tolerance: float
    only_b3: list[dt.date]
    only_yahoo: list[dt.date]

    @property
    def outside(self) -> pd.DataFrame:
        return self.days[~self.days[WITHIN_TOLERANCE]]

    def outcome(self) -> CheckOutcome | Skipped:
        if self.days.empty:
            return Skipped("B3 and Yahoo share no day: nothing to reconcile")
        outside = self.outside
        named = [f"{row.data}: B3 {row.fechamento:,.2f} Yahoo {row.fechamento_yahoo:,.2f} ({row.diferenca:+,.2f})"
                 for row in outside.itertuples()]
        passed = outside.empty and not self.only_b3
        text = (f"{len(self.days)} common day(s): Yahoo's close is B3's within ±{self.tolerance} points on "
                f"{len(self.days) - len(outside)}"
                + (f"; outside on {len(outside)}: {named[:5]}" if named else "")
                + (f"; B3 closes Yahoo lacks: {[d.isoformat() for d in self.only_b3[:5]]}" if self.only_b3 else ""))
        return CheckOutcome(passed, text, {
            "days_compared": len(self.days), "days_outside": len(outside), "tolerance_points": self.tolerance,
            "max_abs_difference": float(self.days[CLOSE_DIFFERENCE].abs().max()),
            "outside_days": named, "only_b3": [d.isoformat() for d in self.only_b3],
            "only_yahoo": [d.isoformat() for d in self.only_yahoo]})


def reconcile_with_yahoo(official: pd.DataFrame, yahoo: pd.DataFrame, *, yahoo_date: str = "date",
                         yahoo_close: str = "close", tolerance: float = YAHOO_TOLERANCE_POINTS) -> Reconciliation:
    """B3's official closes (one index, as published) against Yahoo's closes, day by day, on B3's current scale.

    ``yahoo`` is any frame with a date column and a close column (the raw bars, or ``ibov_refined`` with
    ``yahoo_date="data", yahoo_close="preco_fechamento"``). Rows with a null Yahoo close (old CSVs' holiday rows)
    are ignored. Days only Yahoo has are listed apart: B3's grid may simply not cover them.
    """
    indices = set(official[INDEX_CODE])
    if len(indices) > 1:
        raise ValueError(f"reconcile one index at a time, got {sorted(indices)}")
    b3 = on_current_scale(official)[[CLOSE_DATE, OFFICIAL_CLOSE]]
    other = yahoo[[yahoo_date, yahoo_close]].dropna().rename(columns={yahoo_date: CLOSE_DATE, yahoo_close: YAHOO_CLOSE})
    other[CLOSE_DATE] = pd.to_datetime(other[CLOSE_DATE]).dt.date
    b3_days, yahoo_days = set(b3[CLOSE_DATE]), set(other[CLOSE_DATE])
    days = b3.merge(other, on=CLOSE_DATE, how="inner").sort_values(CLOSE_DATE).reset_index(drop=True)
    days[CLOSE_DIFFERENCE] = (days[YAHOO_CLOSE] - days[OFFICIAL_CLOSE]).round(6)
    days[WITHIN_TOLERANCE] = days[CLOSE_DIFFERENCE].abs() <= tolerance
    first, last = (min(b3_days), max(b3_days)) if b3_days else (None, None)
    only_yahoo = sorted(day for day in yahoo_days - b3_days if first and first <= day <= last)
    return Reconciliation(days, tolerance, sorted(b3_days - yahoo_days), only_yahoo)


# ---------------------------------------------------------------------------------------------------------------------
# Index membership (GetStockIndex) against the portfolio
# ---------------------------------------------------------------------------------------------------------------------
def compare_with_portfolio(answer: StockIndexAnswer, index: str, portfolio_codes: Iterable[str],
                           portfolio_date: dt.date) -> CheckOutcome:
    """The securities GetStockIndex lists in ``index`` equal ``index``'s portfolio of the same day.

    A portfolio of another day is refused (membership changes at every rebalance): compare same-day data only.
    """
    if portfolio_date != answer.update:
        raise ValueError(f"the membership list is of {answer.update} but the {index} portfolio is of "
                         f"{portfolio_date}: compare the same day")
    members, portfolio = answer.members(index), set(portfolio_codes)
    only_members, only_portfolio = sorted(members - portfolio), sorted(portfolio - members)
    passed = bool(portfolio) and not only_members and not only_portfolio
    text = (f"{index} {answer.update}: the {len(members)} members GetStockIndex lists equal the {len(portfolio)} "
            "codes of the portfolio" if passed else
            f"{index} {answer.update}: the portfolio is empty" if not portfolio else
            f"{index} {answer.update}: members not in the portfolio {only_members[:10]}; portfolio codes not listed "
            f"as members {only_portfolio[:10]}")
    return CheckOutcome(passed, text, {"index": index, "date": answer.update.isoformat(), "members": len(members),
                                       "portfolio": len(portfolio), "only_members": only_members,
                                       "only_portfolio": only_portfolio})
