"""The refine engine as a resource: DuckDB in-process (local home) or the Glue Spark job (AWS home).

Both engines run the same SQL (``transforms.sectors.refine_sql``) and leave the refined rows in the run's staging
folder; the table asset commits them to the Iceberg table with one code path. The asset calls
``refine_engine.refine(...)`` and never branches on where it runs.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, Optional

import boto3
import dagster as dg
import pandas as pd
from pydantic import Field

import pyarrow as pa

from b3_dagster.model import REFINED_SCHEMA
from b3_dagster.storage import staging
from b3_dagster.storage.glue_job import (
    GlueRefineError,
    mapping_key,
    refine_job_arguments,
    stage_sector_mapping,
    start_job_run_params,
    upload_script,
)
from b3_dagster.storage.portfolio_store import PortfolioStore
from b3_dagster.transforms.sectors import mapping_table, refine_portfolio, shipped_sector_mapping


def ship_refine_script(glue_client: Any, s3_client: Any, job_name: str) -> tuple[str, bool]:
    """Put the packaged job script at the Glue job's ScriptLocation (when it differs). Returns (uri, uploaded)."""
    script_uri = glue_client.get_job(JobName=job_name)["Job"]["Command"]["ScriptLocation"]
    return script_uri, upload_script(s3_client, script_uri)


def run_refine_on_glue(context: dg.AssetExecutionContext, pipes_glue_client: Any, store: PortfolioStore,
                       days: list[dt.date], processing_date: dt.date, job_name: str, prefix: str,
                       start_params: Optional[dict[str, Any]] = None,
                       mapping: Optional[pd.DataFrame] = None) -> None:
    """Refine ``days`` on the Glue job through Dagster Pipes; the job joins the run's sector ``mapping`` (staged
    beside its output; default: the days' mapping by the shipped classification vintages) and writes the rows
    under ``prefix`` (staging)."""
    if mapping is None:
        mapping = shipped_sector_mapping(pd.concat([store.read_raw(day).rows for day in days], ignore_index=True))
    stage_sector_mapping(store.lake, prefix, mapping_table(mapping))
    arguments = refine_job_arguments(store.lake, days, processing_date, prefix)
    params = start_job_run_params(job_name, arguments, **(start_params or {}))
    context.log.info(f"refining {len(days)} day(s) on Glue job {job_name} into {store.lake.uri(prefix)}")
    try:
        pipes_glue_client.run(context=context, start_job_run_params=params)
    finally:
        store.lake.delete([mapping_key(prefix)])
    if not any(info.key.endswith(".parquet") for info in store.lake.list(prefix)):
        raise GlueRefineError(f"Glue job {job_name} reported success but wrote no rows under "
                              f"{store.lake.uri(prefix)} for {[str(day) for day in days[:5]]}; nothing was staged")


def refine_locally(store: PortfolioStore, days: list[dt.date], processing_date: dt.date, prefix: str,
                   raw_rows: Optional[pd.DataFrame] = None, mapping: Optional[pd.DataFrame] = None) -> None:
    """The in-process engine: one DuckDB statement over every day of the run, its rows staged as one Parquet file.
    ``raw_rows``: the days' raw rows when the caller has already read them (else they are read here); ``mapping``:
    their canonical sectors (default: by the shipped classification vintages)."""
    raw = raw_rows if raw_rows is not None else pd.concat([store.read_raw(day).rows for day in days],
                                                          ignore_index=True)
    refined = refine_portfolio(raw, processing_date, mapping)
    staging.write_rows(store.lake, prefix, pa.Table.from_pandas(refined, schema=REFINED_SCHEMA, preserve_index=False))


class RefineEngineResource(dg.ConfigurableResource):
    """Where the sector refine runs: ``duckdb`` (in the Dagster process) or ``glue`` (the Glue Spark job)."""

    kind: Literal["duckdb", "glue"] = Field(default="duckdb", description="duckdb (local) or glue (AWS Glue job).")
    glue_job_name: str = Field(default="b3-refine-sectors", description="Glue job created by deploy/aws/template.yaml.")
    pipes_bucket: Optional[str] = Field(default=None, description="Bucket for the Dagster Pipes context (glue).")
    pipes_prefix: str = Field(default="dagster-pipes", description="Key prefix for the Dagster Pipes context.")
    endpoint_url: Optional[str] = Field(default=None, description="Custom AWS endpoint (tests).")
    region_name: Optional[str] = Field(default=None, description="AWS region.")
    worker_type: Optional[str] = Field(default=None, description="Override the job's WorkerType (e.g. G.1X).")
    number_of_workers: Optional[int] = Field(default=None, ge=2, description="Override the job's worker count.")

    def _client(self, service: str) -> Any:
        return boto3.session.Session(region_name=self.region_name).client(service, endpoint_url=self.endpoint_url)

    def pipes_glue_client(self) -> Any:
        from dagster_aws.pipes import PipesCloudWatchMessageReader, PipesGlueClient, PipesS3ContextInjector

        if not self.pipes_bucket:
            raise dg.DagsterInvalidConfigError("the glue refine engine needs pipes_bucket", [], None)
        return PipesGlueClient(
            client=self._client("glue"),
            context_injector=PipesS3ContextInjector(bucket=self.pipes_bucket, client=self._client("s3"),
                                                    key_prefix=self.pipes_prefix.strip("/") + "/"),
            message_reader=PipesCloudWatchMessageReader(client=self._client("logs")),
        )

    def refine(self, context: dg.AssetExecutionContext, store: PortfolioStore, days: list[dt.date],
               processing_date: dt.date, prefix: str, raw_rows: Optional[pd.DataFrame] = None,
               mapping: Optional[pd.DataFrame] = None) -> None:
        """Refine ``days`` into the staging folder ``prefix`` with the sector ``mapping`` (SECTOR_MAPPING_COLUMNS of
        the days' raw rows); the local engine uses ``raw_rows`` if given, the Glue job reads raw from S3 itself."""
        if self.kind == "duckdb":
            return refine_locally(store, days, processing_date, prefix, raw_rows, mapping)
        script_uri, uploaded = ship_refine_script(self._client("glue"), self._client("s3"), self.glue_job_name)
        context.log.info(f"Glue script {script_uri} {'uploaded' if uploaded else 'already current'}")
        extra = {key: value for key, value in (("WorkerType", self.worker_type),
                                               ("NumberOfWorkers", self.number_of_workers)) if value is not None}
        return run_refine_on_glue(context, self.pipes_glue_client(), store, days, processing_date,
                                  self.glue_job_name, prefix, extra, mapping)
