"""Typed, configurable resources. Local and AWS differ only in their settings: the assets never branch on it.

- ``LakeResource``: where the layers live: a folder (default ``./data``) or ``s3://bucket/prefix``.
- ``CatalogResource``: the Iceberg catalog: ``sql`` (SQLite under the lake root) or ``glue`` (Glue Data Catalog).
- ``HttpResource``: the base of every HTTP source's resource: its time limits and retries, in one place.
- ``B3PortfolioResource``: the B3 API client settings (base URL, page size, deadlines, retries, size cap).

Defaults come from the one declaration of each setting (``b3_dagster/settings.py``) and, for the HTTP limits, from
``sources.http.HttpPolicy``: no default is written twice.
"""

from __future__ import annotations

from typing import Literal, Optional  # noqa: F401

import dagster as dg
from pydantic import Field

from b3_dagster import settings
from b3_dagster.sources.b3_portfolio import DEFAULT_MAX_PAGE_BYTES, B3PortfolioClient
from b3_dagster.sources.http import HttpPolicy
from b3_dagster.storage.lake import Lake, lake_from_uri
from b3_dagster.storage.portfolio_store import PortfolioStore
from b3_dagster.storage.tables import SQL_CATALOG_FILE, IcebergTables, open_tables


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
    page_size: int = Field(default=120, ge=1, le=9999, description="Rows per page; pagination follows.")
    max_page_bytes: int = Field(default=DEFAULT_MAX_PAGE_BYTES, gt=0,
                                description="Largest page accepted (a page of ~90 rows is about 30 KB).")
    language: Literal["pt-br", "en-us"] = Field(default="pt-br", description="Answer language (dates, numbers).")

    def client(self, on_page=None) -> B3PortfolioClient:
        return B3PortfolioClient(base_url=self.base_url, page_size=self.page_size,
                                 policy=self.http_policy(self.max_page_bytes),
                                 language=self.language, on_page=on_page)
