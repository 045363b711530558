"""Typed, configurable resources. Local and AWS differ only in their settings: the assets never branch on it.

- ``LakeResource``: where the layers live: a folder (default ``./data``) or ``s3://bucket/prefix``.
- ``CatalogResource``: the SQL catalog: ``duckdb`` (a file under the lake root) or ``glue`` (Glue + Athena).
- ``B3PortfolioResource``: the B3 API client settings (base URL, page size, deadlines, retries, size cap).
"""

from __future__ import annotations

import os
from typing import Literal, Optional  # noqa: F401

import dagster as dg
from pydantic import Field

from b3_dagster.sources.b3_portfolio import DEFAULT_BASE_URL, DEFAULT_MAX_PAGE_BYTES, B3PortfolioClient
from b3_dagster.sources.http import HttpPolicy
from b3_dagster.sources.yahoo_chart import DEFAULT_BASE_URL as YAHOO_BASE_URL
from b3_dagster.storage.catalog import DUCKDB_FILE_NAME, Catalog, DuckDBCatalog
from b3_dagster.storage.lake import Lake, LocalLake, lake_from_uri
from b3_dagster.storage.portfolio_store import PortfolioStore


CATALOG_KINDS = ("duckdb", "glue")
# The local home's settings, used when the variable is not exported (no .env is shipped: the dagster CLI would
# load ./.env over exported variables, and an exported B3_LAKE_ROOT=s3://... must win).
LOCAL_DEFAULTS = {
    "B3_LAKE_ROOT": "data",
    "B3_CATALOG": "duckdb",
    "B3_BASE_URL": DEFAULT_BASE_URL,
    "B3_YAHOO_BASE_URL": YAHOO_BASE_URL,
}


def setting(name: str):
    """``dg.EnvVar(name)`` (read at run time) when the variable is exported, else its local default."""
    return dg.EnvVar(name) if os.environ.get(name) else LOCAL_DEFAULTS[name]


class LakeResource(dg.ConfigurableResource):
    """The lake root: a local folder, or ``s3://bucket/prefix`` for the AWS home."""

    root: str = Field(default="data", description="Local folder or s3://bucket/prefix holding raw/ and refined/.")
    s3_endpoint_url: Optional[str] = Field(
        default=None, description="Custom S3 endpoint (tests, MinIO). Default: boto3's own (AWS_ENDPOINT_URL).")
    s3_region: Optional[str] = Field(default=None, description="AWS region. Default: boto3's own (AWS_DEFAULT_REGION).")

    def lake(self) -> Lake:
        return lake_from_uri(self.root, endpoint_url=self.s3_endpoint_url, region_name=self.s3_region)

    def portfolio_store(self) -> PortfolioStore:
        return PortfolioStore(self.lake())


class CatalogResource(dg.ConfigurableResource):
    """The catalog + SQL engine behind ``tb_ibov_refined`` (and ``ibov_refined``)."""

    lake: LakeResource
    kind: str = Field(default="duckdb", description="duckdb (local) or glue (Glue Data Catalog + Athena).")
    duckdb_path: Optional[str] = Field(default=None, description=f"Default: <local lake root>/{DUCKDB_FILE_NAME}.")
    glue_database: str = Field(default="default", description="Glue database of the tables.")
    athena_workgroup: str = Field(default="primary", description="Athena workgroup for queries.")
    athena_output: Optional[str] = Field(default=None, description="s3:// location for Athena query results.")

    def catalog(self) -> Catalog:
        if self.kind not in CATALOG_KINDS:
            raise ValueError(f"catalog kind {self.kind!r} is not one of {CATALOG_KINDS} (B3_CATALOG)")
        if self.kind == "duckdb":
            if self.duckdb_path:
                return DuckDBCatalog(self.duckdb_path)
            lake = self.lake.lake()
            if not isinstance(lake, LocalLake):
                raise ValueError("the duckdb catalog needs duckdb_path when the lake is on S3; use B3_CATALOG=glue")
            return DuckDBCatalog(lake.root / DUCKDB_FILE_NAME)
        from b3_dagster.storage.glue_catalog import GlueAthenaCatalog  # the local home needs no AWS libraries

        return GlueAthenaCatalog(lake=self.lake.lake(), database=self.glue_database,
                                 workgroup=self.athena_workgroup, output_location=self.athena_output,
                                 endpoint_url=self.lake.s3_endpoint_url, region_name=self.lake.s3_region)


class B3PortfolioResource(dg.ConfigurableResource):
    """Settings of B3's GetPortfolioDay API client."""

    base_url: str = Field(default=DEFAULT_BASE_URL, description="B3 host (tests and the replay point elsewhere).")
    page_size: int = Field(default=120, ge=1, le=9999, description="Rows per page; pagination follows.")
    timeout_seconds: float = Field(default=30.0, gt=0, description="Time limit of one request: connect, headers "
                                                                    "and the whole body.")
    fetch_deadline_seconds: float = Field(
        default=120.0, gt=0, description="Time limit of one whole fetch: every page and every retry. A Retry-After "
                                         "longer than what is left ends the fetch.")
    retries: int = Field(default=4, ge=0, le=10, description="Retries on connection errors, timeouts, 429 and 5xx.")
    backoff_seconds: float = Field(default=0.5, ge=0, description="Exponential backoff factor between retries.")
    max_page_bytes: int = Field(default=DEFAULT_MAX_PAGE_BYTES, gt=0,
                                description="Largest page accepted (a page of ~90 rows is about 30 KB).")
    language: Literal["pt-br", "en-us"] = Field(default="pt-br", description="Answer language (dates, numbers).")

    def client(self, on_page=None) -> B3PortfolioClient:
        policy = HttpPolicy(request_timeout=self.timeout_seconds, fetch_deadline=self.fetch_deadline_seconds,
                            retries=self.retries, backoff=self.backoff_seconds, max_bytes=self.max_page_bytes)
        return B3PortfolioClient(base_url=self.base_url, page_size=self.page_size, policy=policy,
                                 language=self.language, on_page=on_page)
