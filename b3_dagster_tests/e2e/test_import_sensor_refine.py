"""The daemon-less equivalent of production: import B3 CSV files -> the sensor evaluates -> the runs it requests
are executed -> the table answers. The same instance carries the sensor's cursor from tick to tick."""

import dagster as dg
import pandas as pd
import pytest

from b3_dagster.defs.automation.sensors import raw_partition_sensor
from b3_dagster.defs.resources import CatalogResource, LakeResource
from b3_dagster.definitions import build_definitions
from b3_dagster.storage.history_import import import_files
from b3_dagster.replay.b3_api import recordings_dir
from b3_dagster.storage.lake import LocalLake
from b3_dagster.storage.portfolio_store import PortfolioStore

SECTOR_CSVS = sorted((recordings_dir().parent / "b3_csv").glob("*.csv"))


def tick(defs, instance, resources, cursor):
    with dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs,
                                 resources={"lake": resources["lake"]}) as context:
        return raw_partition_sensor(context)


def execute(defs, instance, request):
    job = defs.resolve_job_def(request.job_name or "ibov_refine_job")
    tags = dict(request.tags)
    if request.partition_key:
        tags["dagster/partition"] = request.partition_key
    result = job.execute_in_process(instance=instance, tags=tags, raise_on_error=False,
                                    run_config={"ops": {"ibov_sector_refined": {"config": {
                                        "processing_date": "2026-01-05"}}}})
    return result


def test_imported_files_are_refined_once_and_queryable(lake_root, query_tables):
    assert len(SECTOR_CSVS) == 3
    store = PortfolioStore(LocalLake(lake_root))
    outcomes = import_files(SECTOR_CSVS, store)
    assert [o.status for o in outcomes] == ["written"] * 3
    lake = LakeResource(root=str(lake_root))
    resources = {"lake": lake, "catalog": CatalogResource(lake=lake)}
    defs = build_definitions(resources)

    with dg.instance_for_test() as instance:
        first = tick(defs, instance, resources, None)
        requested = sorted(r.partition_key or r.tags["dagster/asset_partition_range_start"] for r in first.run_requests)
        assert requested == sorted(str(o.portfolio_date) for o in outcomes), "three separate days, three runs"
        recorded = [e for e in first.asset_events if isinstance(e, dg.AssetMaterialization)]
        assert len(recorded) == 3, "files imported outside Dagster (no DAGSTER_HOME) are recorded on the raw asset"
        for request in first.run_requests:
            result = execute(defs, instance, request)
            assert result.success
            assert all(e.passed for e in result.get_asset_check_evaluations())

        assert tick(defs, instance, resources, first.cursor).run_requests == [], "nothing new: no run"

    table = query_tables(
        lake_root,
        "SELECT Data, SUM(total_codigo) AS tickers, SUM(soma_part) AS part FROM default.tb_ibov_refined "
        "GROUP BY Data ORDER BY Data")
    assert [str(d.date()) for d in pd.to_datetime(table["Data"])] == sorted(str(o.portfolio_date) for o in outcomes)
    assert list(table["tickers"]) == [o.rows for o in sorted(outcomes, key=lambda o: o.portfolio_date)]
    assert table["part"].tolist() == pytest.approx([100.0] * 3, abs=0.001)
