"""Daily partitions on B3 trading sessions only: no weekends, no B3 holidays (exchange_calendars ``BVMF``)."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from b3_dagster import settings
from b3_dagster.calendar import B3_TIMEZONE, weekday_holidays

DEFAULT_START = settings.default("B3_PARTITIONS_START")  # declared in b3_dagster/settings.py
WEEKEND_CRONS = ["0 0 * * 6", "0 0 * * 0"]


def b3_session_partitions(start: str = DEFAULT_START) -> dg.DailyPartitionsDefinition:
    """One partition per B3 session from ``start``, today's included (``end_offset=1``): B3 publishes a session's
    portfolio before it opens, and serves it only until the next one is published, so the day's snapshot is taken
    on the day. Holidays are known up to the calendar's horizon (about a year ahead); later ones are excluded after
    an upgrade of exchange_calendars and a reload of the code location."""
    holidays = [dt.datetime.combine(day, dt.time()) for day in weekday_holidays(start)]
    return dg.DailyPartitionsDefinition(
        start_date=start,
        timezone=B3_TIMEZONE,
        exclusions=[*WEEKEND_CRONS, *holidays],
        end_offset=1,
    )


# The start is read when the code location loads (partitions are part of the definitions, not of a run).
trading_day_partitions = b3_session_partitions(settings.get("B3_PARTITIONS_START"))
