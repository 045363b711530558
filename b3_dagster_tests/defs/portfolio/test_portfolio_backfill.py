"""A backfill launched as the UI launches it (a PartitionBackfill run by Dagster's backfill daemon) over a range that
holds sessions without raw: it completes, and the assets below the table (the sector charts) run."""

import logging
import time

import dagster as dg
import pytest

from b3_dagster.storage.lake import LocalLake
from b3_dagster.storage.portfolio_store import PortfolioStore
from b3_dagster_tests.helpers import snapshot_of, wait_for

pytestmark = pytest.mark.slow  # the daemon loads the code location in a real code server process

FIRST, WITH_RAW, LAST = "2025-04-04", "2025-04-07", "2025-04-08"  # three sessions; only the middle one has raw
SELECTION = ["ibov_sector_refined", "tb_ibov_refined", "ibov_sector_chart", "ibov_sector_weights_chart"]


def test_a_backfill_over_sessions_without_raw_completes_and_runs_the_charts(tmp_path, monkeypatch, recordings):
    from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
    from dagster._core.test_utils import create_test_daemon_workspace_context, instance_for_test
    from dagster._core.workspace.load_target import ModuleTarget
    from dagster._daemon.backfill import execute_backfill_iteration

    lake = tmp_path / "lake"
    PortfolioStore(LocalLake(lake)).write_raw(snapshot_of(recordings[WITH_RAW]))
    for name in ("B3_LAKE_ROOT", "B3_CATALOG", "B3_REFINE_ENGINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("B3_LAKE_ROOT", str(lake))  # read by the code server and by the runs it launches
    # the runs start at once, each in its own process launched by the code server (as in production), so they read
    # the lake above and not definitions this process may have imported earlier; the daemon's loop is driven by hand
    launcher = {"run_coordinator": {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"}}
    (tmp_path / "home").mkdir()
    with instance_for_test(overrides=launcher, temp_dir=str(tmp_path / "home")) as instance, \
            create_test_daemon_workspace_context(
                ModuleTarget(module_name="b3_dagster.definitions", attribute="defs", working_directory=None,
                             location_name="b3_dagster"), instance) as workspace:
        backfill = PartitionBackfill.from_asset_partitions(
            backfill_id="sessions-without-raw", asset_graph=workspace.create_request_context().asset_graph,
            partition_names=[FIRST, WITH_RAW, LAST], asset_selection=[dg.AssetKey(key) for key in SELECTION],
            backfill_timestamp=time.time(), tags={}, dynamic_partitions_store=instance, all_partitions=False,
            title=None, description=None, run_config=None)
        instance.add_backfill(backfill)
        for _ in range(10):  # the daemon's iterations: launch the range run, then the charts, then finish
            list(execute_backfill_iteration(workspace, logging.getLogger("backfill")))
            if instance.get_backfill(backfill.backfill_id).status != BulkActionStatus.REQUESTED:
                break
            wait_for("the backfill's runs to finish", lambda: all(
                run.is_finished for run in instance.get_runs()), timeout=180, interval=0.5)
        status = instance.get_backfill(backfill.backfill_id).status
        runs = instance.get_runs()
        assert status == BulkActionStatus.COMPLETED_SUCCESS, [(r.job_name, r.status) for r in runs]
        assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
        for chart in ("ibov_sector_chart", "ibov_sector_weights_chart"):
            assert instance.get_latest_materialization_event(dg.AssetKey(chart)) is not None, chart
        # the sessions without raw are recorded as such: no rows, and the reason
        for asset in ("ibov_sector_refined", "tb_ibov_refined"):
            events = {event.partition_key: event.asset_materialization.metadata for event in
                      instance.fetch_materializations(dg.AssetKey(asset), limit=10).records}
            assert set(events) == {FIRST, WITH_RAW, LAST}, asset
            assert events[WITH_RAW]["dagster/row_count"].value > 20
            for day in (FIRST, LAST):
                assert events[day]["dagster/row_count"].value == 0 and "no raw" in events[day]["skipped"].value
