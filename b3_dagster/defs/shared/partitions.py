"""Every partitions definition: B3 sessions, months of sessions, (year, index) and (session, index)."""

import datetime as dt

import dagster as dg

from b3_dagster import settings
from b3_dagster.calendar import B3_TIMEZONE, weekday_holidays
from b3_dagster.errors import ConfigError
from b3_dagster.sources.b3_index_history import FIRST_YEAR

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


def _month_partitions() -> dg.MonthlyPartitionsDefinition:
    """Calendar months from the month of the first daily partition; the current month is a partition too
    (``end_offset=1``) so that it is refined as its days arrive."""
    first = dt.date.fromisoformat(trading_day_partitions.start.strftime("%Y-%m-%d")).replace(day=1)
    return dg.MonthlyPartitionsDefinition(start_date=first.isoformat(), timezone=B3_TIMEZONE, end_offset=1)


ibov_month_partitions = _month_partitions()


GROUP = "b3_indices"
INDICES_SETTING = "B3_INDICES"


def configured_indices() -> list[str]:
    """``B3_INDICES`` (comma-separated B3 codes), read when the code location loads: the indices are a partition
    dimension, part of the definitions (like ``B3_PARTITIONS_START``)."""
    text = settings.get(INDICES_SETTING)
    codes = list(dict.fromkeys(code.strip().upper() for code in text.split(",") if code.strip()))
    bad = [code for code in codes if not code.isalnum() or not 3 <= len(code) <= 5]
    if bad or not codes:
        raise ConfigError(f"{INDICES_SETTING}={text!r}: expected B3 index codes separated by commas, e.g. "
                          f"IBOV,IBXX,SMLL (bad: {bad or 'empty'})")
    return codes


INDICES = configured_indices()
index_dimension = dg.StaticPartitionsDefinition(INDICES)
# One key per (year, index): B3 serves each index's closes per year since 1968; the current year is a key too.
history_partitions = dg.MultiPartitionsDefinition({
    "ano": dg.TimeWindowPartitionsDefinition(cron_schedule="0 0 1 1 *", start=str(FIRST_YEAR), fmt="%Y",
                                             timezone=B3_TIMEZONE, end_offset=1),
    "indice": index_dimension,
})


# ---- portfolios of any index ----------------------------------------------------------------------------------------
portfolio_partitions = dg.MultiPartitionsDefinition({"dia": trading_day_partitions, "indice": index_dimension})
