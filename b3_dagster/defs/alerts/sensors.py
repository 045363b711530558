"""Alerts: the freshness check on the raw snapshot, the missed-day sensor that records its verdict,
and the failed-run notifier (their messages come from ``rules.alerts``)."""

import datetime as dt
import json
from typing import Optional

import dagster as dg

from b3_dagster import settings
from b3_dagster.calendar import B3_TIMEZONE
from b3_dagster.defs.shared import metadata
from b3_dagster.defs.portfolio.checks import RAW_ASSET
from b3_dagster.defs.resources import AlertSettings, LakeResource
from b3_dagster.defs.shared.automation_default import default_sensor_status
from b3_dagster.rules.alerts import due_sessions, job_label, missed_day_message, parse_deadline, run_failure_message
from b3_dagster.storage.layout import raw_prefix

FRESHNESS_CHECK = "raw_snapshot_on_time"
PARTITION_TAG = metadata.PARTITION_TAG  # declared once, with the range tags, in defs/shared/metadata.py
WILL_RETRY_TAG = "dagster/will_retry"
# How often the alert sensors run; read when the code location loads (the tests shorten it).
ALERT_INTERVAL_SECONDS = int(settings.get("B3_ALERT_INTERVAL_SECONDS"))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


SNAPSHOT_JOBS = ("ibov_snapshot_job",)  # the job that takes the day's raw snapshot


def _last_run(instance, day: dt.date):
    """The newest run that tried to take the day's snapshot (the index and refine jobs share the partition)."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={PARTITION_TAG: day.isoformat()}, job_name=None), limit=20)
    return next((run for run in runs if run.job_name in SNAPSHOT_JOBS), None)


def missing_days(settings: AlertSettings, lake: LakeResource, now: dt.datetime) -> tuple[list[dt.date], list]:
    """(due sessions, those of them without a raw partition in the lake)."""
    deadline = parse_deadline(settings.freshness_deadline)
    since = dt.date.fromisoformat(settings.since) if settings.since else None
    due = due_sessions(now, deadline, settings.lookback_sessions, since)
    store = lake.portfolio_store()
    return due, [day for day in due if not store.raw_keys(day)]


def _check_evaluation(due: list[dt.date], missing: list[dt.date], settings: AlertSettings):
    passed = not missing
    description = (f"all {len(due)} due session(s) have their raw snapshot" if passed else
                   f"{len(missing)} session(s) without a raw snapshot after {settings.freshness_deadline} "
                   f"{B3_TIMEZONE}: {', '.join(d.isoformat() for d in missing)}")
    metadata = {"due_sessions": len(due), "missing": ", ".join(d.isoformat() for d in missing) or "none",
                "deadline": f"{settings.freshness_deadline} {B3_TIMEZONE}"}
    return passed, description, metadata


# Written at the lake's root by `b3-dagster demo`: its lake holds recorded past days, so "is the last session's
# snapshot there?" has nothing to compare with. The check and the missed-day sensor skip on such a lake, with this
# reason, instead of failing forever on the user's first `dagster dev`.
DEMO_LAKE_MARKER = "DEMO_LAKE.txt"
DEMO_LAKE_REASON = "demo lake: recorded past days, not the last B3 sessions"


def demo_lake_reason(lake: LakeResource) -> Optional[str]:
    return DEMO_LAKE_REASON if lake.lake().exists(DEMO_LAKE_MARKER) else None


def mark_demo_lake(lake: LakeResource) -> None:
    lake.lake().write_bytes(DEMO_LAKE_MARKER, (
        "Written by `b3-dagster demo`: this lake holds recorded past B3 days, replayed offline.\n"
        f"The {FRESHNESS_CHECK} check and ibov_missed_day_sensor skip here ({DEMO_LAKE_REASON}).\n"
        "Delete this file to watch the last B3 sessions in this lake.\n").encode())


# A multi-asset check that may emit nothing (can_subset): on a demo lake it yields no result, so Dagster records the
# check as skipped (the reason is in the run's log), never as passed.
@dg.multi_asset_check(
    name=FRESHNESS_CHECK,
    specs=[dg.AssetCheckSpec(
        name=FRESHNESS_CHECK, asset=RAW_ASSET,
        description="Every B3 session whose deadline has passed (B3_FRESHNESS_DEADLINE, São Paulo time, on that "
                    "trading day) has its raw snapshot. Weekends and holidays are never expected. Skipped on the "
                    f"demo's lake ({DEMO_LAKE_MARKER} at its root).")],
    can_subset=True,
)
def raw_snapshot_on_time(context: dg.AssetCheckExecutionContext, alerts: AlertSettings, lake: LakeResource):
    skip = demo_lake_reason(lake)
    if skip:
        context.log.info(f"{FRESHNESS_CHECK} skipped: {skip}")
        return
    due, missing = missing_days(alerts, lake, _now())
    passed, description, metadata = _check_evaluation(due, missing, alerts)
    yield dg.AssetCheckResult(asset_key=dg.AssetKey(RAW_ASSET), check_name=FRESHNESS_CHECK, passed=passed,
                              description=description, metadata=metadata, severity=dg.AssetCheckSeverity.ERROR)


def _missed_reason(instance, day: dt.date, settings: AlertSettings, lake: LakeResource):
    run = _last_run(instance, day)
    where = lake.portfolio_store().lake.uri(raw_prefix(day))
    base = f"no raw snapshot at {where} by {settings.freshness_deadline} {B3_TIMEZONE}"
    if run is None:
        return f"{base}; no run was launched for this day (is the daemon running, the schedule on?)", None
    label = job_label(run.job_name, [key.to_user_string() for key in (run.asset_selection or [])])
    return f"{base}; the last run for this day ({label}) is {run.status.value}", run.run_id


@dg.sensor(name="ibov_missed_day_sensor", minimum_interval_seconds=ALERT_INTERVAL_SECONDS,
           default_status=default_sensor_status(),
           description="Posts one alert per B3 session whose raw snapshot is missing after the freshness deadline; "
                       "records the raw_snapshot_on_time check when its verdict changes.")
def missed_day_sensor(context: dg.SensorEvaluationContext, alerts: AlertSettings, lake: LakeResource):
    skip = demo_lake_reason(lake)
    if skip:
        return dg.SkipReason(skip)
    state = json.loads(context.cursor) if context.cursor else {"alerted": [], "passed": None}
    due, missing = missing_days(alerts, lake, _now())
    alerted = set(state["alerted"])
    deadline = parse_deadline(alerts.freshness_deadline)
    for day in missing:
        if day.isoformat() in alerted:
            continue
        reason, run_id = _missed_reason(context.instance, day, alerts, lake)
        try:
            alerts.deliver(context.log, missed_day_message(asset=RAW_ASSET, day=day, deadline=deadline,
                                                           reason=reason, links=alerts.links(), run_id=run_id))
        except Exception as error:  # keep what was delivered; the rest is sent again on the next tick
            context.log.error(f"alert for {day} not delivered ({error}); retrying on the next tick")
            break
        alerted.add(day.isoformat())
    oldest = due[0].isoformat() if due else ""
    passed, description, metadata = _check_evaluation(due, missing, alerts)
    events = []
    if passed != state["passed"]:
        events.append(dg.AssetCheckEvaluation(asset_key=dg.AssetKey(RAW_ASSET), check_name=FRESHNESS_CHECK,
                                              passed=passed, description=description, metadata=metadata,
                                              severity=dg.AssetCheckSeverity.ERROR))
    cursor = json.dumps({"alerted": sorted(day for day in alerted if day >= oldest), "passed": passed})
    return dg.SensorResult(cursor=cursor, asset_events=events)


def _failure_reason(context: dg.RunFailureSensorContext) -> str:
    steps = context.get_step_failure_events()
    messages = []
    for event in steps:
        error = event.event_specific_data.error if event.event_specific_data else None
        messages.append(f"{event.step_key}: {error.message.strip() if error else event.message}")
    return "; ".join(messages) or context.failure_event.message or "the run failed"


def _partition_of(tags) -> Optional[str]:
    return metadata.partition_of_run(tags)


@dg.run_failure_sensor(name="ibov_run_failure_notifier", minimum_interval_seconds=ALERT_INTERVAL_SECONDS,
                       default_status=default_sensor_status(),
                       description="Posts one alert per failed run (partition, reason, link to the run); runs that "
                                   "run retries will re-execute are left to their retry.")
def run_failure_notifier(context: dg.RunFailureSensorContext, alerts: AlertSettings):
    run = context.instance.get_run_by_id(context.dagster_run.run_id) or context.dagster_run
    if run.tags.get(WILL_RETRY_TAG) == "true":
        context.log.info(f"run {run.run_id} failed and will be retried: no alert")
        return
    # a run over the whole of a hidden asset job has no asset selection: its failed steps name the assets
    assets = ([key.to_user_string() for key in run.asset_selection] if run.asset_selection
              else sorted({event.step_key for event in context.get_step_failure_events() if event.step_key}))
    alerts.deliver(context.log, run_failure_message(job=job_label(run.job_name, assets), run_id=run.run_id,
                                                    partition=_partition_of(run.tags),
                                                    reason=_failure_reason(context), links=alerts.links()))
