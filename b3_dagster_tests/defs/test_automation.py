"""The schedule and the raw-partition sensor, evaluated as the daemon would (build_*_context)."""

import datetime as dt
import logging
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from b3_dagster.defs.automation import ibov_daily_schedule, raw_partition_sensor
from b3_dagster.defs.portfolio_assets import ibov_raw_snapshot
from b3_dagster.defs.resources import B3PortfolioResource, LakeResource
from b3_dagster.definitions import defs
from b3_dagster.storage.lake import LocalLake
from b3_dagster.storage.portfolio_store import PortfolioStore
from b3_dagster_tests.storage.test_portfolio_store import snapshot_of

SP = ZoneInfo("America/Sao_Paulo")


@pytest.mark.parametrize(
    ("when", "partition", "skip_reason"),
    [(dt.datetime(2025, 11, 21, 10, tzinfo=SP), "2025-11-21", None),
     (dt.datetime(2025, 11, 20, 10, tzinfo=SP), None, "holiday"),
     (dt.datetime(2025, 11, 22, 10, tzinfo=SP), None, "Saturday")],
)
def test_schedule_ticks(when, partition, skip_reason):
    with dg.instance_for_test() as instance:
        result = ibov_daily_schedule(dg.build_schedule_context(instance=instance, scheduled_execution_time=when))
    if partition:
        assert isinstance(result, dg.RunRequest) and result.partition_key == partition
    else:
        assert isinstance(result, dg.SkipReason) and skip_reason in result.skip_message


def test_schedule_is_running_by_default_and_targets_the_snapshot():
    assert ibov_daily_schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert ibov_daily_schedule.job_name == "ibov_snapshot_job"
    assert ibov_daily_schedule.execution_timezone == "America/Sao_Paulo"


class Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def evaluate(instance, lake_root, cursor=None, log_handler=None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs,
                                      resources={"lake": LakeResource(root=str(lake_root))})
    if log_handler:
        context.log.addHandler(log_handler)
    return raw_partition_sensor(context)


def test_sensor_new_same_changed(lake_root, recordings):
    store = PortfolioStore(LocalLake(lake_root))
    snapshot = snapshot_of(recordings["2025-04-07"])
    store.write_raw(snapshot)  # dropped from outside: no Dagster materialisation recorded it
    with dg.instance_for_test() as instance:
        first = evaluate(instance, lake_root)
        assert [r.partition_key for r in first.run_requests] == ["2025-04-07"]
        assert first.run_requests[0].job_name in (None, "ibov_refine_job")
        assert [e.partition for e in first.asset_events] == ["2025-04-07"], "external drop recorded on raw asset"

        again = evaluate(instance, lake_root, first.cursor)
        assert again.run_requests == [] and again.skip_reason is not None

        changed = snapshot_of(recordings["2025-04-07"])
        changed.rows.loc[0, "asset"] = "WEG S.A."
        store.write_raw(changed, allow_overwrite=True)
        third = evaluate(instance, lake_root, again.cursor)
        assert [r.partition_key for r in third.run_requests] == ["2025-04-07"]
        assert third.run_requests[0].run_key != first.run_requests[0].run_key


def test_sensor_ignores_bad_names_with_a_logged_reason(lake_root):
    lake = LocalLake(lake_root)
    lake.write_bytes("raw/date=2025-11-20/ibov_setor.parquet", b"holiday")
    lake.write_bytes("raw/date=not-a-date/ibov_setor.parquet", b"bad")
    lake.write_bytes("refined/Data=2025-04-07/x.parquet", b"outside raw")
    collect = Collect()
    with dg.instance_for_test() as instance:
        result = evaluate(instance, lake_root, log_handler=collect)
    assert result.run_requests == []
    logged = "\n".join(collect.messages)
    assert "2025-11-20 is not a B3 session" in logged
    assert "not-a-date" in logged and "is not a YYYY-MM-DD date" in logged
    assert "refined/" not in logged


def test_consecutive_days_are_refined_in_one_run(lake_root, recordings):
    store = PortfolioStore(LocalLake(lake_root))
    snapshot = snapshot_of(recordings["2025-04-07"])
    for day in ["2025-04-03", "2025-04-04", "2025-04-07"]:
        rows = snapshot.rows.copy()
        rows["DataCarteira"] = dt.date.fromisoformat(day)
        store.write_raw(type(snapshot)(dt.date.fromisoformat(day), rows, snapshot.reductor,
                                       snapshot.theoretical_qty_total))
    with dg.instance_for_test() as instance:
        result = evaluate(instance, lake_root)
    assert len(result.run_requests) == 1
    tags = result.run_requests[0].tags
    assert (tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"]) == (
        "2025-04-03", "2025-04-07")


def test_a_partition_written_by_the_asset_is_not_recorded_twice(lake_root, serve_recording, recordings):
    recording = recordings["2025-04-07"]
    with dg.instance_for_test() as instance:
        lake = LakeResource(root=str(lake_root))
        assert dg.materialize([ibov_raw_snapshot], partition_key=recording.date, instance=instance, resources={
            "lake": lake, "b3": B3PortfolioResource(base_url=serve_recording(recording), language="en-us")}).success
        result = evaluate(instance, lake_root)
    assert [r.partition_key for r in result.run_requests] == ["2025-04-07"]
    assert result.asset_events == []
