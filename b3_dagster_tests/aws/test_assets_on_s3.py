"""The real portfolio assets materialised on the AWS home (S3 lake + Iceberg tables in the Glue catalog, on moto)
and on the local home (folder + SQLite catalog) for the same recorded B3 days: the same raw objects, the same table
rows, every check passing on both. The table asset reads back through pyiceberg (not Athena, which moto cannot
run), so it is checked on AWS exactly as locally."""

from __future__ import annotations

import uuid

import boto3
import dagster as dg
import pytest

from b3_dagster.defs.portfolio.assets import ibov_raw_snapshot, sector_refine_and_commit
from b3_dagster.defs.resources import RefineEngineResource
from b3_dagster.defs.resources import B3PortfolioResource, CatalogResource, LakeResource
from b3_dagster.storage.lake import LocalLake
from b3_dagster.storage.lakes import lake_from_uri

REGION = "us-east-1"
ALL = [ibov_raw_snapshot, sector_refine_and_commit]
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
    glue = CatalogResource(lake=s3_lake, kind="glue", glue_database=database)
    local_lake = LakeResource(root=str(tmp_path / "lake"))
    local = CatalogResource(lake=local_lake)

    for recording in recordings.values():
        httpserver.clear_all_handlers()  # B3 serves one day at a time
        base_url = serve_recording(recording)
        local_result = _run(local_lake, local, base_url, recording)
        aws_result = _run(s3_lake, glue, base_url, recording)
        for result in (local_result, aws_result):
            assert result.success and all(_checks(result).values()), [
                e.event_specific_data.error.to_string() for e in result.all_events if e.is_step_failure]
        assert _checks(aws_result) == _checks(local_result)
        materialised = {event.asset_key.to_user_string() for event in aws_result.get_asset_materialization_events()}
        assert materialised == {"ibov_raw_snapshot", "ibov_sector_refined", "tb_ibov_refined"}

    s3 = lake_from_uri(f"s3://{bucket}/lake", endpoint_url=aws_env)
    disk = LocalLake(tmp_path / "lake")
    raw_keys = [info.key for info in disk.list("raw/")]
    assert [info.key for info in s3.list("raw/")] == raw_keys and len(raw_keys) == len(recordings)
    for key in raw_keys:
        assert s3.read_bytes(key) == disk.read_bytes(key), key
    assert s3.list("staging/") == [] and disk.list("staging/") == []

    from b3_dagster.storage.tables import PORTFOLIO_TABLE_DEF

    on_aws, on_disk = (catalog.tables().scan(PORTFOLIO_TABLE_DEF).sort_by([("Data", "ascending"),
                                                                            ("Setor", "ascending")])
                       for catalog in (glue, local))
    assert on_aws.equals(on_disk) and on_aws.num_rows > 50
    table = boto3.client("glue", region_name=REGION).get_table(DatabaseName=database, Name="tb_ibov_refined")["Table"]
    assert table["Parameters"]["table_type"].upper() == "ICEBERG"
