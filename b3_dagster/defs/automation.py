"""The daily schedule (B3 sessions only) and the sensor on new raw partitions.

Schedule -> ``ibov_snapshot_job`` (raw only). Sensor -> ``ibov_refine_job`` (refined + table) for each group of
consecutive new or changed raw days, whoever wrote them: this project's schedule, a backfill, the CSV importer, or
a file dropped into the lake from outside (an old Lambda, a manual upload), which it also records as a
materialisation of the raw asset so that lineage stays true.
"""

import os
from zoneinfo import ZoneInfo

import dagster as dg

from b3_dagster.automation_rules import RawCursor, decide, group_consecutive, run_key, schedule_decision
from b3_dagster.calendar import B3_TIMEZONE
from b3_dagster.defs.checks import RAW_ASSET
from b3_dagster.defs.metadata import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG
from b3_dagster.defs.partitions import trading_day_partitions
from b3_dagster.defs.portfolio_assets import ibov_raw_snapshot, refine_job
from b3_dagster.defs.resources import LakeResource
from b3_dagster.storage.layout import RAW_PREFIX

# Read when the code location loads: they shape the definitions (the cron string, the sensor's interval).
SNAPSHOT_CRON = os.environ.get("B3_SNAPSHOT_CRON", "0 10 * * *")  # every day at 10:00 in São Paulo; skips if closed
SENSOR_INTERVAL_SECONDS = int(os.environ.get("B3_RAW_SENSOR_INTERVAL_SECONDS", "60"))

snapshot_job = dg.define_asset_job(
    "ibov_snapshot_job",
    selection=dg.AssetSelection.assets(ibov_raw_snapshot),
    description="Take the day's IBOV portfolio from B3 into raw/ (the sensor refines it).",
)


@dg.schedule(
    name="ibov_daily_schedule",
    job=snapshot_job,
    cron_schedule=SNAPSHOT_CRON,
    execution_timezone=B3_TIMEZONE,
    default_status=dg.DefaultScheduleStatus.RUNNING,
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


def _written_by_this_project(instance: dg.DagsterInstance, day: str, key: str, version: str) -> bool:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(RAW_ASSET), asset_partitions=[day]), limit=1).records
    if not records:
        return False
    metadata = records[0].asset_materialization.metadata
    recorded = metadata.get("object_version")
    recorded_key = metadata.get("object_key")
    return (recorded is not None and recorded.value == version
            and recorded_key is not None and recorded_key.value == key)


@dg.sensor(
    name="raw_partition_sensor",
    job=refine_job,
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches raw/ of the configured lake (folder or S3 prefix). A new or changed raw partition gets "
                "exactly one refine + table run; files dropped from outside are recorded on the raw asset.",
)
def raw_partition_sensor(context: dg.SensorEvaluationContext, lake: LakeResource):
    storage = lake.lake()
    listing = storage.list(RAW_PREFIX)
    partition_keys = trading_day_partitions.get_partition_keys(dynamic_partitions_store=context.instance)
    decision = decide(listing, RawCursor.parse(context.cursor), set(partition_keys))
    for key, reason in decision.ignored:
        context.log.warning(f"ignored {storage.uri(key)}: {reason}")

    asset_events = []
    for change in decision.changes:
        day = change.day.isoformat()
        if not _written_by_this_project(context.instance, day, change.key, change.version):
            context.log.info(f"{storage.uri(change.key)} was written outside this project: recorded on {RAW_ASSET}")
            asset_events.append(dg.AssetMaterialization(
                asset_key=RAW_ASSET, partition=day,
                description="Raw file found in the lake by raw_partition_sensor (not written by this project).",
                metadata={"source": "dropped into the lake from outside", "path": storage.uri(change.key),
                          "object_key": change.key, "object_version": change.version,
                          "detected_by": "raw_partition_sensor"}))

    run_requests = []
    for group in group_consecutive(decision.changes, partition_keys):
        days = sorted({change.day.isoformat() for change in group})
        tags = {"b3/trigger": "raw_partition_sensor", "b3/raw_objects": str(len(group))}
        if len(days) == 1:
            run_requests.append(dg.RunRequest(run_key=run_key(group), partition_key=days[0], tags=tags))
        else:
            tags.update({PARTITION_RANGE_START_TAG: days[0], PARTITION_RANGE_END_TAG: days[-1]})
            run_requests.append(dg.RunRequest(run_key=run_key(group), tags=tags))
        context.log.info(f"refine requested for {days[0]}..{days[-1]} ({len(days)} day(s))")

    if not run_requests and not decision.ignored:
        return dg.SensorResult(skip_reason=dg.SkipReason(f"no new or changed raw partition among {len(listing)} "
                                                         "object(s)"), cursor=decision.cursor.serialize())
    return dg.SensorResult(run_requests=run_requests, asset_events=asset_events, cursor=decision.cursor.serialize())


schedules = [ibov_daily_schedule]
sensors = [raw_partition_sensor]
jobs = [snapshot_job]
