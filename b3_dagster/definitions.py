"""The code location: one ``Definitions`` object, built from ``b3_dagster.defs``.

Settings are declared once, in ``b3_dagster/settings.py``; the resources read them at run time from the environment
(``dg.EnvVar``) when exported, otherwise their declared defaults apply. No ``.env`` is shipped: the dagster CLI would
load it over the exported variables. Switching homes (local folder + SQLite Iceberg catalog, or S3 + Glue Iceberg catalog) is a change of
environment, never of code. ``build_definitions(resources)`` lets the CLI and the tests supply concrete resources
(e.g. a local replay of B3) to the very same assets, jobs, schedules and sensors.
"""

from typing import Mapping, Optional

import dagster as dg

from b3_dagster import settings
from b3_dagster.library_warnings import quiet_library_warnings

# Before the assets are defined (their decorators warn at import): `dagster dev`, the code server and `dagster
# definitions validate` load this module, and users must not meet library warnings addressed to developers.
quiet_library_warnings()

from b3_dagster.defs import alerts, automation  # noqa: E402 (after the warning filters, on purpose)
from b3_dagster.defs.index_assets import (
    YahooChartResource,
    index_assets,
    index_charts_job,
    index_job,
    index_refine_job,
)
from b3_dagster.defs.glue_refine import RefineEngineResource
from b3_dagster.defs.indices import B3IndicesResource, indices_assets, indices_jobs, indices_schedules
from b3_dagster.defs.portfolio_assets import portfolio_assets, refine_job
from b3_dagster.defs.resources import B3PortfolioResource, CatalogResource, LakeResource, setting
from b3_dagster.defs.sectors import sector_assets, sector_job
from b3_dagster.defs.table_commit import table_maintenance_job, table_maintenance_schedule


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


def catalog_resource(lake: LakeResource, kind) -> CatalogResource:
    return CatalogResource(lake=lake, kind=kind, glue_database=aws_settings()["glue_database"])


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


def build_definitions(resources: Optional[Mapping[str, object]] = None) -> dg.Definitions:
    return dg.Definitions(
        assets=[*portfolio_assets, *index_assets, *sector_assets, *indices_assets],
        jobs=[refine_job, *automation.jobs, index_job, index_refine_job, index_charts_job,
              table_maintenance_job, sector_job, *indices_jobs],
        schedules=[*automation.schedules, table_maintenance_schedule, *indices_schedules],
        sensors=[*automation.sensors, *alerts.alert_sensors],
        asset_checks=alerts.alert_checks,
        resources={**environment_resources(), "alerts": alerts.alert_settings_from_env(), **(resources or {})},
    )


defs = build_definitions()
