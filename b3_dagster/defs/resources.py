"""Every resource of the code location, and the environment -> resources choice: a local folder + SQLite Iceberg
catalog, or S3 + the Glue catalog, picked from settings when the code location loads (``environment_resources``).
The assets never branch on the home: they call these resources."""

import datetime as dt
import os
from typing import Any, Literal, Optional

import boto3
import dagster as dg
import pandas as pd
import pyarrow as pa
from pydantic import Field

from b3_dagster import settings
from b3_dagster.errors import GlueRefineError
from b3_dagster.model import REFINED_SCHEMA
from b3_dagster.rules.alerts import UiLinks, ui_base_url
from b3_dagster.sources.b3_index_history import B3IndexHistoryClient
from b3_dagster.sources.b3_portfolio import DEFAULT_MAX_PAGE_BYTES, DEFAULT_PAGE_SIZE, B3PortfolioClient
from b3_dagster.sources.b3_stock_index import B3StockIndexClient
from b3_dagster.sources.http import HttpPolicy, http_session, post_message
from b3_dagster.sources.yahoo_chart import DEFAULT_MAX_CHART_BYTES, IBOV_SYMBOL, YahooChartClient
from b3_dagster.storage import staging
from b3_dagster.storage.glue_job import (
    mapping_key,
    refine_job_arguments,
    stage_sector_mapping,
    start_job_run_params,
    upload_script,
)
from b3_dagster.storage.lake import Lake
from b3_dagster.storage.lakes import lake_from_uri
from b3_dagster.storage.portfolio_store import PortfolioStore
from b3_dagster.storage.tables import SQL_CATALOG_FILE, IcebergTables, open_tables
from b3_dagster.transforms.sector_refine import mapping_table, refine_portfolio, shipped_sector_mapping


def aws_settings() -> dict[str, Optional[str]]:
    """The AWS-only knobs, with their defaults; read when the code location loads (see README "On AWS").
    boto3 reads only AWS_DEFAULT_REGION by itself, so AWS_REGION is passed on explicitly."""
    return {
        "region": settings.region(),
        "glue_database": settings.get("B3_GLUE_DATABASE"),
        "refine_engine": settings.get("B3_REFINE_ENGINE"),
        "glue_job": settings.get("B3_GLUE_JOB"),
        "pipes_bucket": settings.get("B3_PIPES_BUCKET"),
    }


def setting(name: str):
    """``dg.EnvVar(name)`` (read at run time) when the variable is exported, else its declared default
    (``b3_dagster/settings.py``)."""
    declared = settings.BY_NAME[name]
    return dg.EnvVar(name) if declared.exported() else declared.default


class LakeResource(dg.ConfigurableResource):
    """The lake root: a local folder, or ``s3://bucket/prefix`` for the AWS home."""

    root: str = Field(default=settings.default("B3_LAKE_ROOT"),
                      description="Local folder or s3://bucket/prefix holding raw/, staging/ and the tables.")
    s3_endpoint_url: Optional[str] = Field(
        default=None, description="Custom S3 endpoint (tests, MinIO). Default: boto3's own (AWS_ENDPOINT_URL).")
    s3_region: Optional[str] = Field(default=None, description="AWS region. Default: boto3's own (AWS_DEFAULT_REGION).")

    def lake(self) -> Lake:
        return lake_from_uri(self.root, endpoint_url=self.s3_endpoint_url, region_name=self.s3_region)

    def portfolio_store(self) -> PortfolioStore:
        return PortfolioStore(self.lake())


class CatalogResource(dg.ConfigurableResource):
    """The Iceberg catalog of ``tb_ibov_refined`` and ``ibov_refined``: ``sql`` (pyiceberg's SQL catalog on SQLite
    under the local lake root) or ``glue`` (the Glue Data Catalog; Athena queries the tables natively)."""

    lake: LakeResource
    kind: str = Field(default=settings.default("B3_CATALOG"),
                      description="sql (local SQLite catalog) or glue (AWS Glue Data Catalog); 'duckdb', the name "
                                  "before the Iceberg tables, means sql.")
    sql_uri: Optional[str] = Field(default=None, description=f"Default: sqlite:///<local lake root>/{SQL_CATALOG_FILE}.")
    glue_database: str = Field(default=settings.default("B3_GLUE_DATABASE"),
                               description="Glue database of tb_ibov_refined (default.*).")
    glue_endpoint_url: Optional[str] = Field(default=None, description="Custom Glue/S3 endpoint (tests).")
    commit_retries: int = Field(default=3, ge=0, le=20, description="Times a commit that lost a race with another "
                                                                    "commit is replayed on the new snapshot.")
    snapshot_retention_days: float = Field(default=30, gt=0, description="Maintenance keeps the snapshots of the "
                                                                          "last N days (time travel reaches back "
                                                                          "that far; the current one always stays).")
    orphan_grace_hours: float = Field(default=6, ge=0, description="Maintenance removes unreferenced table and "
                                                                   "staging files older than this (a run in flight "
                                                                   "writes files before its commit).")

    def tables(self) -> IcebergTables:
        return open_tables(self.lake.lake(), self.kind, glue_database=self.glue_database,
                           region_name=self.lake.s3_region,
                           endpoint_url=self.glue_endpoint_url or self.lake.s3_endpoint_url, sql_uri=self.sql_uri,
                           commit_retries=self.commit_retries)


def catalog_resource(lake: LakeResource, kind) -> CatalogResource:
    return CatalogResource(lake=lake, kind=kind, glue_database=aws_settings()["glue_database"])


_HTTP = HttpPolicy()  # the HTTP limits' defaults, declared once (sources/http.py)


class HttpResource(dg.ConfigurableResource):
    """The time limits and retries shared by every HTTP source's resource; ``http_policy`` builds the client's
    ``HttpPolicy`` from them (and the subclass's size cap)."""

    timeout_seconds: float = Field(default=_HTTP.request_timeout, gt=0, description="Time limit of one request: "
                                                                                    "connect, headers and the whole "
                                                                                    "body.")
    fetch_deadline_seconds: float = Field(
        default=_HTTP.fetch_deadline, gt=0, description="Time limit of one whole fetch: every page and every retry. "
                                                        "A Retry-After longer than what is left ends the fetch.")
    retries: int = Field(default=_HTTP.retries, ge=0, le=10, description="Retries on connection errors, timeouts, "
                                                                         "429 and 5xx.")
    backoff_seconds: float = Field(default=_HTTP.backoff, ge=0, description="Exponential backoff factor between "
                                                                            "retries.")

    def http_policy(self, max_bytes: int = _HTTP.max_bytes) -> HttpPolicy:
        return HttpPolicy(request_timeout=self.timeout_seconds, fetch_deadline=self.fetch_deadline_seconds,
                          retries=self.retries, backoff=self.backoff_seconds, max_bytes=max_bytes)


class B3PortfolioResource(HttpResource):
    """Settings of B3's GetPortfolioDay API client."""

    base_url: str = Field(default=settings.default("B3_BASE_URL"), description="B3 host (tests and the replay "
                                                                                "point elsewhere).")
    page_size: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=9999, description="Rows per page; pagination follows.")
    max_page_bytes: int = Field(default=DEFAULT_MAX_PAGE_BYTES, gt=0,
                                description="Largest page accepted (a page of ~90 rows is about 30 KB).")
    language: Literal["pt-br", "en-us"] = Field(default="pt-br", description="Answer language (dates, numbers).")

    def client(self, on_page=None) -> B3PortfolioClient:
        return B3PortfolioClient(base_url=self.base_url, page_size=self.page_size,
                                 policy=self.http_policy(self.max_page_bytes),
                                 language=self.language, on_page=on_page)


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

    kind: Literal["duckdb", "glue"] = Field(default=settings.default("B3_REFINE_ENGINE"),
                                            description="duckdb (local) or glue (AWS Glue job).")
    glue_job_name: str = Field(default=settings.default("B3_GLUE_JOB"),
                               description="Glue job created by deploy/aws/template.yaml.")
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


class YahooChartResource(HttpResource):
    """Settings of Yahoo's chart API client (the demo and the tests point base_url at a local replay)."""

    base_url: str = Field(default=settings.default("B3_YAHOO_BASE_URL"),
                          description="Chart API host; a local replay in demos/tests.")
    symbol: str = Field(default=IBOV_SYMBOL, description="Yahoo symbol of the IBOVESPA index.")
    max_body_bytes: int = Field(default=DEFAULT_MAX_CHART_BYTES, gt=0,
                                description="Largest answer accepted (the whole ^BVSP history is about 1 MB).")
    user_agent: Optional[str] = Field(default=None, description="User-Agent header (Yahoo rejects some agents).")

    def client(self) -> YahooChartClient:
        session = http_session()
        if self.user_agent:
            session.headers["User-Agent"] = self.user_agent
        return YahooChartClient(base_url=self.base_url, symbol=self.symbol,
                                policy=self.http_policy(self.max_body_bytes), session=session)


class B3IndicesResource(HttpResource):
    """Settings of B3's index endpoints (year grids, GetStockIndex): the same host as GetPortfolioDay."""

    base_url: str = Field(default=settings.default("B3_BASE_URL"),
                          description="B3 host (the demo and tests point at a replay).")
    language: str = Field(default="pt-br", description="Language of the year grids (sets their number format).")

    def policy(self) -> HttpPolicy:
        return self.http_policy()

    def history_client(self) -> B3IndexHistoryClient:
        return B3IndexHistoryClient(base_url=self.base_url, language=self.language, policy=self.policy())

    def stock_index_client(self) -> B3StockIndexClient:
        return B3StockIndexClient(base_url=self.base_url, policy=self.policy())


def environment_resources() -> dict[str, dg.ConfigurableResource]:
    """Resources configured from the environment: the lake, catalog and API hosts at run time (dg.EnvVar)."""
    # S3 endpoint and credentials come from boto3's own environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...).
    aws = aws_settings()
    lake = LakeResource(root=setting("B3_LAKE_ROOT"), s3_region=aws["region"])
    return {
        "lake": lake,
        "catalog": catalog_resource(lake, setting("B3_CATALOG")),
        "refine_engine": RefineEngineResource(kind=aws["refine_engine"], glue_job_name=aws["glue_job"],
                                              pipes_bucket=aws["pipes_bucket"], region_name=aws["region"]),
        "b3": B3PortfolioResource(base_url=setting("B3_BASE_URL")),
        "yahoo": YahooChartResource(base_url=setting("B3_YAHOO_BASE_URL")),
        "b3_indices": B3IndicesResource(base_url=setting("B3_BASE_URL")),  # same host as GetPortfolioDay
    }


def indices_resources(base_url) -> dict:
    return {"b3_indices": B3IndicesResource(base_url=base_url)}


class AlertSettings(dg.ConfigurableResource):
    """Where alerts go and when a trading day counts as missed."""

    webhook_url: str = Field(default=settings.default("B3_ALERT_WEBHOOK_URL") or "",
                             description="Slack-compatible incoming webhook. Empty: log only.")
    ui_base_url: str = Field(default=ui_base_url({}), description="The Dagster UI as users reach it.")
    freshness_deadline: str = Field(
        default=settings.default("B3_FRESHNESS_DEADLINE"),
        description="HH:MM in America/Sao_Paulo by which a session's raw partition must exist "
                    "(after the schedule's B3_SNAPSHOT_CRON, well before B3 starts serving the next session).")
    lookback_sessions: int = Field(default=int(settings.default("B3_ALERT_LOOKBACK_SESSIONS")),
                                   description="How many past sessions are watched (at least 1).")
    since: Optional[str] = Field(default=None, description="YYYY-MM-DD: no alert for sessions before it.")

    def links(self) -> UiLinks:
        return UiLinks(self.ui_base_url)

    def deliver(self, log, payload: dict) -> None:
        if not self.webhook_url:
            log.warning(f"alert (B3_ALERT_WEBHOOK_URL not set, not posted): {payload['text']}")
            return
        post_message(self.webhook_url, payload)
        log.info(f"alert posted: {payload['text']}")


ALERT_ENV = {  # resource field -> environment variable
    "webhook_url": "B3_ALERT_WEBHOOK_URL",
    "ui_base_url": "B3_DAGSTER_UI_URL",
    "freshness_deadline": "B3_FRESHNESS_DEADLINE",
    "lookback_sessions": "B3_ALERT_LOOKBACK_SESSIONS",
    "since": "B3_ALERT_SINCE",
}


def alert_settings_from_env() -> AlertSettings:
    """Settings from the environment variables that are set (as ``dg.EnvVar``: the webhook URL is a secret and
    never shows in the UI); the others keep their defaults."""
    fields = {}
    for name, variable in ALERT_ENV.items():
        if settings.BY_NAME[variable].exported():
            fields[name] = dg.EnvVar.int(variable) if name == "lookback_sessions" else dg.EnvVar(variable)
    fields.setdefault("ui_base_url", ui_base_url(os.environ))  # the port the user chose for `dagster dev`
    return AlertSettings(**fields)


# ---- the code location's resources and executor: what dg.load_from_defs_folder picks up ---------------------------
# Every run executes its steps in the run's own process. Each job is a chain of one or two steps, so Dagster's
# default (a process per step) parallelised nothing and loaded the code location again for every step (about 5 s of
# CPU each on 2 cores). A step that crashes ends its run, which run retries re-execute (deploy/dagster.yaml).
@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={**environment_resources(), "alerts": alert_settings_from_env()},
                          executor=dg.in_process_executor)
