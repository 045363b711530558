"""B3 trading sessions (exchange_calendars' ``BVMF``): the only days that get a partition."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import exchange_calendars as xcals
import pandas as pd

B3_TIMEZONE = "America/Sao_Paulo"
CALENDAR_NAME = "BVMF"


@lru_cache(maxsize=1)
def b3_calendar() -> xcals.ExchangeCalendar:
    return xcals.get_calendar(CALENDAR_NAME)


def _as_date(value: dt.date | str) -> dt.date:
    return dt.date.fromisoformat(value) if isinstance(value, str) else value


def is_session(day: dt.date | str) -> bool:
    day = _as_date(day)
    calendar = b3_calendar()
    if not calendar.first_session.date() <= day <= calendar.last_session.date():
        raise ValueError(f"{day} is outside the B3 calendar's range ({calendar.first_session.date()}.."
                         f"{calendar.last_session.date()}); upgrade exchange_calendars")
    return bool(calendar.is_session(pd.Timestamp(day)))


def sessions(start: dt.date | str, end: dt.date | str) -> list[dt.date]:
    """B3 sessions from ``start`` to ``end``, both included."""
    calendar = b3_calendar()
    start_ts = max(pd.Timestamp(_as_date(start)), calendar.first_session)
    end_ts = min(pd.Timestamp(_as_date(end)), calendar.last_session)
    if start_ts > end_ts:
        return []
    return [ts.date() for ts in calendar.sessions_in_range(start_ts, end_ts)]


def weekday_holidays(start: dt.date | str, end: dt.date | str | None = None) -> list[dt.date]:
    """Weekdays on which B3 does not trade (national and exchange holidays), from ``start`` to ``end``.

    ``end`` defaults to the calendar's horizon (about a year ahead): holidays further out are only known after an
    upgrade of exchange_calendars.
    """
    calendar = b3_calendar()
    end_date = _as_date(end) if end is not None else calendar.last_session.date()
    open_days = set(sessions(start, end_date))
    weekdays = pd.bdate_range(_as_date(start), end_date)
    return [day.date() for day in weekdays if day.date() not in open_days]
