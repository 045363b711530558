"""The schedule and the raw-partition sensor, evaluated as the daemon would (build_*_context)."""

import datetime as dt
import logging
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from b3_dagster.defs.portfolio.checks import RAW_CHECKS
from b3_dagster.defs.shared.automation_default import (
    automation_default,
    default_schedule_status,
    default_sensor_status,
)
from b3_dagster.defs.automation.schedules import ibov_daily_schedule
from b3_dagster.defs.automation.sensors import raw_partition_sensor, record_raw_days
from b3_dagster.defs.portfolio.assets import ibov_raw_snapshot
from b3_dagster.defs.resources import B3PortfolioResource, CatalogResource, LakeResource
from b3_dagster.definitions import build_definitions, defs
from b3_dagster.storage.lake import LocalLake
from b3_dagster.storage.portfolio_store import PortfolioStore
from b3_dagster_tests.helpers import snapshot_of

SP = ZoneInfo("America/Sao_Paulo")
REPO = Path(__file__).resolve().parents[3]


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


def test_schedule_targets_the_snapshot():
    assert ibov_daily_schedule.job_name == "ibov_snapshot_job"
    assert ibov_daily_schedule.execution_timezone == "America/Sao_Paulo"


@pytest.mark.parametrize(("setting", "schedule", "sensor"), [
    (None, dg.DefaultScheduleStatus.STOPPED, dg.DefaultSensorStatus.STOPPED),
    ("stopped", dg.DefaultScheduleStatus.STOPPED, dg.DefaultSensorStatus.STOPPED),
    (" Running ", dg.DefaultScheduleStatus.RUNNING, dg.DefaultSensorStatus.RUNNING),
])
def test_automation_default_follows_the_setting(monkeypatch, setting, schedule, sensor):
    """Stopped on a laptop unless the user turns them on; running where deploy/ sets B3_AUTOMATION_DEFAULT."""
    if setting is None:
        monkeypatch.delenv("B3_AUTOMATION_DEFAULT", raising=False)
    else:
        monkeypatch.setenv("B3_AUTOMATION_DEFAULT", setting)
    assert default_schedule_status() == schedule and default_sensor_status() == sensor


def test_the_loaded_schedule_and_sensors_take_the_default_read_at_load():
    """Every schedule and sensor of the code location uses the setting (read when this process loaded it; the UI
    test after the demo sees them stopped, the production test running)."""
    assert defs.resolve_schedule_def("ibov_daily_schedule").default_status == default_schedule_status()
    for name in ("raw_partition_sensor", "ibov_missed_day_sensor", "ibov_run_failure_notifier"):
        assert defs.resolve_sensor_def(name).default_status == default_sensor_status(), name


def test_a_wrong_automation_default_names_the_setting(monkeypatch):
    monkeypatch.setenv("B3_AUTOMATION_DEFAULT", "on")
    with pytest.raises(ValueError, match="B3_AUTOMATION_DEFAULT='on'.*running"):
        automation_default()


@pytest.mark.parametrize("path", ["deploy/systemd/b3-dagster.env.example", "deploy/Dockerfile",
                                  "deploy/aws/production.yaml", "deploy/start.sh"])
def test_production_files_turn_automation_on(path):
    assert "B3_AUTOMATION_DEFAULT" in (REPO / path).read_text() and "running" in (REPO / path).read_text()


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
        materializations = [e for e in first.asset_events if isinstance(e, dg.AssetMaterialization)]
        assert [e.partition for e in materializations] == ["2025-04-07"], "external drop recorded on raw asset"
        assert materializations[0].metadata["dagster/row_count"].value == len(snapshot.rows)
        checks = [e for e in first.asset_events if isinstance(e, dg.AssetCheckEvaluation)]
        assert len(checks) == len(RAW_CHECKS) and all(c.passed for c in checks), "the raw rules judged the dropped file"

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


@pytest.mark.slow  # 3.8 s (measured 2026-11-30, --durations=0)
def test_imported_then_refined_days_launch_nothing_on_a_fresh_cursor(lake_root, recordings):
    """What the first `dagster dev` after the demo sees: raw days recorded by the import, refined by the demo."""
    store = PortfolioStore(LocalLake(lake_root))
    snapshot = snapshot_of(recordings["2025-04-07"])
    store.write_raw(snapshot)
    lake = LakeResource(root=str(lake_root))
    with dg.instance_for_test() as instance:
        assert record_raw_days(instance, store, [snapshot.portfolio_date], source="test import",
                               description="imported") == 1
        assert record_raw_days(instance, store, [snapshot.portfolio_date], source="test import",
                               description="imported") == 0, "the same object is recorded once"
        record = instance.fetch_materializations(dg.AssetKey("ibov_raw_snapshot"), limit=1).records[0]
        assert record.partition_key == "2025-04-07"
        assert record.asset_materialization.metadata["object_key"].value == "raw/date=2025-04-07/ibov_setor.parquet"

        before = evaluate(instance, lake_root)
        assert [r.partition_key for r in before.run_requests] == ["2025-04-07"], "imported, not refined yet"
        assert before.asset_events == [], "the import already recorded it: not 'written outside this project'"

        defs_for_lake = build_definitions({"lake": lake, "catalog": CatalogResource(lake=lake)})
        refined = defs_for_lake.resolve_job_def("ibov_refine_job").execute_in_process(
            instance=instance, partition_key="2025-04-07")
        assert refined.success
        after = evaluate(instance, lake_root)  # a fresh cursor, as on a new daemon
        assert after.run_requests == [] and "no raw object left to refine" in after.skip_reason.skip_message
