"""The real portfolio assets materialised on the AWS home (S3 lake + Glue catalog on moto) and on the local home
(folder + DuckDB) for the same recorded B3 days: the same lake objects, the same partitions registered.

Athena on moto runs no SQL, so the table asset's query step cannot pass there; the test asserts it fails loudly
(instead of accepting an empty answer) after the Glue registration it checks."""

from __future__ import annotations

import uuid

import boto3
import dagster as dg
import pytest

from b3_dagster.defs.portfolio_assets import ibov_raw_snapshot, ibov_sector_refined, tb_ibov_refined
from b3_dagster.defs.glue_refine import RefineEngineResource
from b3_dagster.defs.resources import B3PortfolioResource, CatalogResource, LakeResource
from b3_dagster.storage.catalog import DuckDBCatalog
from b3_dagster.storage.glue_catalog import GlueAthenaCatalog
from b3_dagster.storage.lake import LocalLake, lake_from_uri
from b3_dagster.storage.portfolio_store import portfolio_table_spec

REGION = "us-east-1"
ALL = [ibov_raw_snapshot, ibov_sector_refined, tb_ibov_refined]
PROCESSING = {"ops": {"ibov_sector_refined": {"config": {"processing_date": "2025-06-02"}}}}


def _run(lake: LakeResource, catalog: CatalogResource, base_url: str, recording):
    resources = {"lake": lake, "catalog": catalog, "refine_engine": RefineEngineResource(),
                 "b3": B3PortfolioResource(base_url=base_url, language=recording.language, retries=1,
                                           backoff_seconds=0, page_size=40)}
    return dg.materialize(ALL, partition_key=recording.date, resources=resources, run_config=PROCESSING,
                          raise_on_error=False)


def _checks(result) -> dict[str, bool]:
    return {evaluation.check_name: evaluation.passed for evaluation in result.get_asset_check_evaluations()}


def _failure(result, step: str):
    return next(event.event_specific_data.error for event in result.all_events
                if event.is_step_failure and event.step_key == step)


@pytest.mark.slow  # six in-process Dagster runs against two servers
def test_same_materialisations_on_s3_and_glue_as_locally(tmp_path, bucket, aws_env, httpserver, serve_recording,
                                                         recordings):
    database = f"b3_{uuid.uuid4().hex[:8]}"
    s3_lake = LakeResource(root=f"s3://{bucket}/lake", s3_endpoint_url=aws_env, s3_region=REGION)
    glue = CatalogResource(lake=s3_lake, kind="glue", glue_database=database,
                           athena_output=f"s3://{bucket}/athena-results/")
    local_lake = LakeResource(root=str(tmp_path / "lake"))
    local = CatalogResource(lake=local_lake)

    for recording in recordings.values():
        httpserver.clear_all_handlers()  # B3 serves one day at a time
        base_url = serve_recording(recording)
        local_result = _run(local_lake, local, base_url, recording)
        aws_result = _run(s3_lake, glue, base_url, recording)

        assert local_result.success and all(_checks(local_result).values()), [
            e.event_specific_data.error.to_string() for e in local_result.all_events if e.is_step_failure]
        aws_checks = _checks(aws_result)
        assert {name: passed for name, passed in aws_checks.items() if name != "table_answers_query"} == \
            {name: passed for name, passed in _checks(local_result).items() if name != "table_answers_query"}
        assert all(passed for name, passed in aws_checks.items() if name != "table_answers_query")
        materialised = {event.asset_key.to_user_string() for event in aws_result.get_asset_materialization_events()}
        assert materialised == {"ibov_raw_snapshot", "ibov_sector_refined"}
        error = _failure(aws_result, "tb_ibov_refined")
        assert "wrote no result file" in (error.cause.message if error.cause else error.message)

    s3 = lake_from_uri(f"s3://{bucket}/lake", endpoint_url=aws_env)
    disk = LocalLake(tmp_path / "lake")
    local_keys = [info.key for info in disk.list() if not info.key.startswith("catalog.duckdb")]
    assert [info.key for info in s3.list() if not info.key.startswith("athena-results/")] == local_keys
    assert sum(key.startswith("refined/") for key in local_keys) > 50
    for key in local_keys:
        assert s3.read_bytes(key) == disk.read_bytes(key), key

    spec = portfolio_table_spec()
    registered = GlueAthenaCatalog(lake=s3, database=database, endpoint_url=aws_env,
                                   region_name=REGION).partitions(spec)
    expected = DuckDBCatalog(tmp_path / "lake" / "catalog.duckdb").partitions(spec)
    assert [p.values for p in registered] == [p.values for p in expected]
    # same folders relative to each lake's root (a local path has no trailing "/", an S3 prefix keeps it)
    assert [p.location[len(s3.root_uri):].rstrip("/") for p in registered] == \
        [p.location[len(disk.root_uri):] for p in expected]
    table = boto3.client("glue", region_name=REGION).get_table(DatabaseName=database, Name=spec.name)["Table"]
    assert table["StorageDescriptor"]["Location"] == f"s3://{bucket}/lake/refined/"
