"""The daily schedules: the IBOV snapshot, and every index's portfolios, official closes and membership."""

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg

from b3_dagster import settings
from b3_dagster.calendar import B3_TIMEZONE
from b3_dagster.defs.index.jobs import index_history_job
from b3_dagster.defs.portfolio.jobs import index_portfolio_raw_job, membership_job, snapshot_job
from b3_dagster.defs.shared.automation_default import default_schedule_status
from b3_dagster.defs.shared.partitions import INDICES
from b3_dagster.rules.automation import schedule_decision


# ---- schedules: every B3 session, one run per configured index ------------------------------------------------------
def _session_runs(context: dg.ScheduleEvaluationContext, what: str, keys) -> list[dg.RunRequest] | dg.SkipReason:
    """The run requests of one tick: ``keys(day)`` -> partition keys, one run each (one index failing does not block
    the others); on weekends and B3 holidays the tick is skipped with the reason (as ibov_daily_schedule does)."""
    from zoneinfo import ZoneInfo

    from b3_dagster.rules.automation import schedule_decision

    day, reason = schedule_decision(context.scheduled_execution_time.astimezone(ZoneInfo(B3_TIMEZONE)))
    if day is None:
        return dg.SkipReason(f"{reason.split(':')[0]}: B3 does not trade, there are no {what} to take")
    # the session day in the run key: the current year's key (2026|IBOV) is requested again every session, and
    # Dagster drops a request whose run key it has seen
    return [dg.RunRequest(run_key=f"{what.replace(' ', '_')}:{day}:{key}", partition_key=key,
                          tags={"b3/trigger": "schedule"}) for key in keys(dt.date.fromisoformat(day))]


# Read when the code location loads: they shape the definitions (the cron string, the sensor's interval).
SNAPSHOT_CRON = settings.get("B3_SNAPSHOT_CRON")  # every day at 10:00 in São Paulo by default; skips if closed


def _schedule_settings() -> dict:
    from b3_dagster.defs.automation.schedules import SNAPSHOT_CRON
    from b3_dagster.defs.shared.automation_default import default_schedule_status

    return {"cron_schedule": SNAPSHOT_CRON, "execution_timezone": B3_TIMEZONE,
            "default_status": default_schedule_status()}


@dg.schedule(name="index_portfolios_daily_schedule", job=index_portfolio_raw_job, **_schedule_settings(),
             description="Every B3 session: one index_portfolio_raw run per configured index (B3_INDICES), key "
                         "<session>|<index>. Skipped with the reason on weekends and B3 holidays.")
def index_portfolios_daily_schedule(context: dg.ScheduleEvaluationContext):
    return _session_runs(context, "index portfolios", lambda day: [f"{day.isoformat()}|{index}" for index in INDICES])


@dg.schedule(name="index_history_daily_schedule", job=index_history_job, **_schedule_settings(),
             description="Every B3 session: B3's year grid of the current year, one run per configured index (key "
                         "<year>|<index>); the grid grows by a day, the previous answer is archived.")
def index_history_daily_schedule(context: dg.ScheduleEvaluationContext):
    return _session_runs(context, "official closes", lambda day: [f"{day.year}|{index}" for index in INDICES])


@dg.schedule(name="index_membership_daily_schedule", job=membership_job, **_schedule_settings(),
             description="Every B3 session: B3's GetStockIndex answer (the membership of every index) into raw.")
def index_membership_daily_schedule(context: dg.ScheduleEvaluationContext):
    return _session_runs(context, "index membership", lambda day: [day.isoformat()])


@dg.schedule(
    name="ibov_daily_schedule",
    job=snapshot_job,
    cron_schedule=SNAPSHOT_CRON,
    execution_timezone=B3_TIMEZONE,
    default_status=default_schedule_status(),
    description="Takes B3's IBOV portfolio every B3 session (exchange_calendars BVMF); on weekends and B3 holidays "
                "the tick is skipped with the reason.",
)
def ibov_daily_schedule(context: dg.ScheduleEvaluationContext):
    partition_key, reason = schedule_decision(context.scheduled_execution_time.astimezone(ZoneInfo(B3_TIMEZONE)))
    if partition_key is None:
        return dg.SkipReason(reason)
    context.log.info(reason)
    return dg.RunRequest(run_key=f"snapshot:{partition_key}", partition_key=partition_key,
                         tags={"b3/trigger": "schedule"})
