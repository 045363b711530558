"""The refine engine resource on its Glue path: the real PipesGlueClient against moto (the request it sends, the
script it ships; moto runs no script, so the missing output must make the run fail), and the whole flow with the
job script executed by local Spark in place of Glue."""

from __future__ import annotations

import datetime as dt
import uuid

import boto3
import dagster as dg
import pytest

import pandas as pd

from b3_dagster.defs.resources import RefineEngineResource, refine_locally, run_refine_on_glue
from b3_dagster.glue_jobs import refine_sectors
from b3_dagster.model import REFINED_SCHEMA
from b3_dagster.storage import staging
from b3_dagster.storage.glue_job import refine_script
from b3_dagster.storage.lake import LocalLake
from b3_dagster.storage.lakes import lake_from_uri
from b3_dagster.storage.layout import raw_prefix
from b3_dagster.storage.portfolio_store import PortfolioStore
from b3_dagster.transforms.sector_refine import refine_sql

REGION = "us-east-1"
PROCESSING_DATE = dt.date(2025, 4, 8)


def _materialize(store, days, engine):
    @dg.asset
    def refined_on_engine(context, refine_engine: RefineEngineResource):
        refine_engine.refine(context, store, days, PROCESSING_DATE, staging.run_prefix("test", context.run.run_id))
        return dg.MaterializeResult()

    return dg.materialize([refined_on_engine], resources={"refine_engine": engine}, raise_on_error=False)


@pytest.mark.slow  # PipesGlueClient polls the job run every few seconds
# moto's job writes no CloudWatch log, which the pipes log reader reports as it gives up (on AWS the log is there)
@pytest.mark.filterwarnings("ignore:\\[pipes\\] Attempted to read log for reader PipesCloudWatchLogReader:UserWarning")
def test_glue_engine_sends_the_refine_and_fails_when_the_job_wrote_nothing(bucket, aws_env, recorded_snapshots,
                                                                          monkeypatch):
    # moto's job writes no CloudWatch log: don't let the pipes log reader wait its full minute for one
    monkeypatch.setattr("dagster._core.pipes.utils.WAIT_FOR_LOGS_TIMEOUT", 1)
    store = PortfolioStore(lake_from_uri(f"s3://{bucket}/lake", endpoint_url=aws_env))
    for snapshot in recorded_snapshots:
        store.write_raw(snapshot)
    days = [snapshot.portfolio_date for snapshot in recorded_snapshots]
    glue, s3 = boto3.client("glue", region_name=REGION), boto3.client("s3", region_name=REGION)
    job_name = f"refine-{uuid.uuid4().hex[:8]}"
    script_uri = f"s3://{bucket}/glue_jobs/refine_sectors.py"
    glue.create_job(Name=job_name, Role="arn:aws:iam::123456789012:role/glue-job", GlueVersion="5.0",
                    Command={"Name": "glueetl", "ScriptLocation": script_uri, "PythonVersion": "3"})
    engine = RefineEngineResource(kind="glue", glue_job_name=job_name, pipes_bucket=bucket, endpoint_url=aws_env,
                                  region_name=REGION)

    result = _materialize(store, days, engine)

    # moto "runs" the job without executing the script: no output, so the run must fail and write nothing
    assert not result.success
    failure = next(event for event in result.all_events if event.is_step_failure)
    cause = failure.event_specific_data.error.cause
    assert cause.cls_name == "GlueRefineError"
    assert "wrote no rows under" in cause.message and "'2022-12-08', '2025-04-07'" in cause.message
    assert [info.key for info in store.lake.list() if not info.key.startswith("raw/")] == []
    # what Glue was asked to do
    assert s3.get_object(Bucket=bucket, Key="glue_jobs/refine_sectors.py")["Body"].read() == refine_script()
    runs = glue.get_job_runs(JobName=job_name)["JobRuns"]
    assert len(runs) == 1
    arguments = runs[0]["Arguments"]
    assert arguments["--refine_sql"] == refine_sql(PROCESSING_DATE, dialect="spark")
    assert arguments["--raw_paths"].split(",") == [store.lake.uri(raw_prefix(day)) for day in days]
    assert arguments["--output_path"].startswith(f"s3://{bucket}/lake/staging/test/")
    assert "--dagster-pipes-messages" in arguments
    from dagster_pipes import decode_param

    context_location = decode_param(arguments["--dagster-pipes-context"])  # where the job reads its Pipes context
    assert context_location["bucket"] == bucket and context_location["key"].startswith("dagster-pipes/")
    assert refine_sectors.parse_arguments([item for pair in arguments.items() for item in pair])["source_view"] \
        == "raw_portfolio"


class SparkStandInForGlue:
    """Runs the shipped job script with local Spark where PipesGlueClient would start the Glue job."""

    def __init__(self, spark):
        self.spark = spark
        self.requests = []

    def run(self, *, context, start_job_run_params):
        self.requests.append(start_job_run_params)
        argv = [item for pair in start_job_run_params["Arguments"].items() for item in pair]
        refine_sectors.main(argv, spark=self.spark)


@pytest.mark.slow
def test_refine_through_the_glue_path_stages_the_local_engines_rows(tmp_path, spark, recorded_snapshots):
    glue_store, local_store = (PortfolioStore(LocalLake(tmp_path / name)) for name in ("glue", "local"))
    for snapshot in recorded_snapshots:
        glue_store.write_raw(snapshot)
        local_store.write_raw(snapshot)
    days = [snapshot.portfolio_date for snapshot in recorded_snapshots]
    stand_in = SparkStandInForGlue(spark)
    prefix = staging.run_prefix("ibov_sector_refined", "run-1")

    run_refine_on_glue(dg.build_asset_context(), stand_in, glue_store, days, PROCESSING_DATE,
                       "b3-refine-sectors", prefix, {"NumberOfWorkers": 2})
    refine_locally(local_store, days, PROCESSING_DATE, prefix)

    assert stand_in.requests[0]["JobName"] == "b3-refine-sectors" and stand_in.requests[0]["NumberOfWorkers"] == 2
    by_glue, by_duckdb = (staging.read_rows(store.lake, prefix, REFINED_SCHEMA).to_pandas()
                          .sort_values(["Data", "Setor"]).reset_index(drop=True) for store in (glue_store, local_store))
    assert len(by_glue) >= len(recorded_snapshots) * 10  # about 30 canonical sectors a day
    pd.testing.assert_frame_equal(by_glue, by_duckdb, check_exact=True)
