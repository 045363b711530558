"""The raw-partition sensor: it translates ``rules.automation.decide`` into run requests."""

import datetime as dt
from typing import Optional

import dagster as dg

from b3_dagster import settings
from b3_dagster.defs.portfolio.checks import RAW_ASSET, REFINED_ASSET
from b3_dagster.defs.portfolio.jobs import refine_job
from b3_dagster.defs.resources import LakeResource
from b3_dagster.defs.shared.automation_default import default_sensor_status
from b3_dagster.defs.shared.checks import result, skipped_metadata
from b3_dagster.defs.shared.metadata import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG, path, preview
from b3_dagster.defs.shared.partitions import trading_day_partitions
from b3_dagster.errors import NotARawPartition
from b3_dagster.rules.automation import RawCursor, decide, group_consecutive, listing_digest, run_key
from b3_dagster.rules.quality import raw_outcomes
from b3_dagster.storage.layout import RAW_PREFIX, parse_raw_key

SENSOR_INTERVAL_SECONDS = int(settings.get("B3_RAW_SENSOR_INTERVAL_SECONDS"))


def _latest_raw_records(instance: dg.DagsterInstance, days: set[str]) -> dict[str, "dg.EventLogRecord"]:
    """The newest materialisation record of ``ibov_raw_snapshot`` for each of ``days`` that has one."""
    if not days:
        return {}
    ids = instance.get_latest_storage_id_by_partition(dg.AssetKey(RAW_ASSET), dg.DagsterEventType.ASSET_MATERIALIZATION,
                                                      partitions=days)
    if not ids:
        return {}
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(RAW_ASSET), storage_ids=list(ids.values())),
        limit=len(ids)).records
    return {record.partition_key: record for record in records if record.partition_key}


def _object_of(record) -> tuple[Optional[str], Optional[str]]:
    metadata = record.asset_materialization.metadata if record and record.asset_materialization else {}
    key, version = metadata.get("object_key"), metadata.get("object_version")
    return (key.value if key is not None else None), (version.value if version is not None else None)


def written_by_this_project(instance: dg.DagsterInstance, day: str, key: str, version: str) -> bool:
    """Whether the instance already records this exact raw object (key and version) as the day's materialisation:
    written by the asset, by `b3-dagster import-csv`, or found and recorded by the sensor before."""
    return _object_of(_latest_raw_records(instance, {day}).get(day)) == (key, version)


def refined_versions(instance: dg.DagsterInstance, days: set[str]) -> dict[str, str]:
    """object key -> version, for each day whose raw object (as last recorded) has been refined since it was
    recorded: the refined asset's newest materialisation of that day is newer than the raw one."""
    raw = _latest_raw_records(instance, days)
    refined_ids = instance.get_latest_storage_id_by_partition(
        dg.AssetKey(REFINED_ASSET), dg.DagsterEventType.ASSET_MATERIALIZATION, partitions=set(raw)) if raw else {}
    known = {}
    for day, record in raw.items():
        key, version = _object_of(record)
        if key and version and refined_ids.get(day, -1) > record.storage_id:
            known[key] = version
    return known


def raw_day_event(store, day: dt.date, *, source: str, description: str, write_status: str = "recorded",
                  detected_by: Optional[str] = None) -> tuple[dg.AssetMaterialization, list[dg.AssetCheckEvaluation]]:
    """A raw partition written outside a run (the CSV import, a file dropped into the lake), as the materialisation
    ``ibov_raw_snapshot`` would have recorded (rows, path, preview, object key and version), with the raw rules'
    verdicts on the stored file."""
    keys = store.raw_keys(day)
    key = keys[0] if keys else ""
    listed = store.lake.list(key) if key else []
    metadata = {"portfolio_date": day.isoformat(), "write_status": write_status, "source": source,
                "path": path(store.lake.uri(key)), "object_key": key,
                "object_version": listed[0].version if listed else ""}
    if detected_by:
        metadata["detected_by"] = detected_by
    try:
        stored = store.read_raw(day)
    except Exception as error:  # a file dropped from outside may be anything: record it; the refine refuses it
        stored = None
        metadata["unreadable"] = f"{type(error).__name__}: {error}"[:500]
    if stored is not None:
        metadata.update({"dagster/row_count": len(stored.rows), "sectors": int(stored.rows["segment"].nunique()),
                         "preview": preview(stored.rows)})
    outcomes = raw_outcomes([stored]) if stored is not None else []
    if stored is not None:
        metadata.update(skipped_metadata(outcomes))  # a rule with nothing to compare is named, never passed
    materialization = dg.AssetMaterialization(asset_key=RAW_ASSET, partition=day.isoformat(),
                                              description=description, metadata=metadata)
    evaluations = []
    for name, outcome in outcomes:
        if outcome.skipped is not None:  # nothing to compare: no evaluation (Dagster shows it not run), never passed
            continue
        checked = result(RAW_ASSET, name, outcome)
        evaluations.append(dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey(RAW_ASSET), check_name=name, passed=checked.passed, metadata=checked.metadata,
            severity=checked.severity, description=checked.description, partition=day.isoformat()))
    return materialization, evaluations


def record_raw_days(instance: dg.DagsterInstance, store, days: list[dt.date], *, source: str,
                    description: str) -> int:
    """Record raw days written outside a run (``b3-dagster import-csv``) in the instance, unless the instance
    already records the very same object: the sensor and the UI then treat them as this project's writes."""
    recorded = 0
    for day in sorted(set(days)):
        materialization, evaluations = raw_day_event(store, day, source=source, description=description,
                                                     write_status="imported")
        key, version = materialization.metadata["object_key"].value, materialization.metadata["object_version"].value
        if written_by_this_project(instance, day.isoformat(), key, version):
            continue
        instance.report_runless_asset_event(materialization)
        for evaluation in evaluations:
            instance.report_runless_asset_event(evaluation)
        recorded += 1
    return recorded


@dg.sensor(
    name="raw_partition_sensor",
    job=refine_job,
    minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
    default_status=default_sensor_status(),
    description="Watches raw/ of the configured lake (folder or S3 prefix). A new or changed raw partition gets "
                "exactly one refine + table run; files dropped from outside are recorded on the raw asset. Its "
                "cursor is a digest of the last listing plus the newest day seen; which object version was "
                "refined is read from this instance.",
)
def raw_partition_sensor(context: dg.SensorEvaluationContext, lake: LakeResource):
    storage = lake.lake()
    listing = storage.list(RAW_PREFIX)
    cursor = RawCursor.parse(context.cursor)
    if cursor.digest and cursor.digest == listing_digest(listing):
        return dg.SensorResult(skip_reason=dg.SkipReason(
            f"no new or changed raw object among {len(listing)} (newest day {cursor.newest_day or 'none'})"),
            cursor=cursor.serialize())
    partition_keys = trading_day_partitions.get_partition_keys(dynamic_partitions_store=context.instance)
    days = set()
    for info in listing:
        try:
            days.add(parse_raw_key(info.key).isoformat())
        except NotARawPartition:
            pass
    decision = decide(listing, cursor, set(partition_keys), refined_versions(context.instance, days))
    for key, reason in decision.ignored:
        context.log.warning(f"ignored {storage.uri(key)}: {reason}")

    asset_events = []
    for change in decision.changes:
        day = change.day.isoformat()
        if not written_by_this_project(context.instance, day, change.key, change.version):
            context.log.info(f"{storage.uri(change.key)} was written outside this project: recorded on {RAW_ASSET}")
            materialization, evaluations = raw_day_event(
                lake.portfolio_store(), change.day, source="dropped into the lake from outside",
                description="Raw file found in the lake by raw_partition_sensor (not written by this project).",
                detected_by="raw_partition_sensor")
            asset_events += [materialization, *evaluations]

    run_requests = []
    for group in group_consecutive(decision.changes, partition_keys):
        days_of_group = sorted({change.day.isoformat() for change in group})
        tags = {"b3/trigger": "raw_partition_sensor", "b3/raw_objects": str(len(group))}
        key = run_key(group)
        if len(days_of_group) == 1:
            run_requests.append(dg.RunRequest(run_key=key, partition_key=days_of_group[0], tags=tags))
        else:
            tags.update({PARTITION_RANGE_START_TAG: days_of_group[0], PARTITION_RANGE_END_TAG: days_of_group[-1]})
            run_requests.append(dg.RunRequest(run_key=key, tags=tags))
        decision.cursor.requested.append(key)
        context.log.info(f"refine requested for {days_of_group[0]}..{days_of_group[-1]} ({len(days_of_group)} day(s))")

    if not run_requests:  # no changes, so no asset events either: say why the tick did nothing
        ignored = f"; {len(decision.ignored)} ignored, named in the tick's log" if decision.ignored else ""
        return dg.SensorResult(skip_reason=dg.SkipReason(
            f"no raw object left to refine among {len(listing)} (newest day {decision.cursor.newest_day or 'none'})"
            f"{ignored}"), cursor=decision.cursor.serialize())
    return dg.SensorResult(run_requests=run_requests, asset_events=asset_events, cursor=decision.cursor.serialize())
