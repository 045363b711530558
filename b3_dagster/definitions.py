"""The code location: one ``Definitions`` object, built from ``b3_dagster.defs``.

Settings are read at run time from the environment (``dg.EnvVar``); ``.env`` in the project root holds the local
defaults that ``dagster dev`` loads. Switching homes (local folder + DuckDB, or S3 + Glue + Athena) is a change of
environment, never of code.
"""

from __future__ import annotations

import dagster as dg

from b3_dagster.defs import automation
from b3_dagster.defs.portfolio_assets import portfolio_assets, portfolio_job, refine_job
from b3_dagster.defs.resources import B3PortfolioResource, CatalogResource, LakeResource


def build_resources() -> dict[str, dg.ConfigurableResource]:
    # S3 endpoint, region and credentials come from boto3's own environment (AWS_ENDPOINT_URL, AWS_REGION, ...).
    lake = LakeResource(root=dg.EnvVar("B3_LAKE_ROOT"))
    return {
        "lake": lake,
        "catalog": CatalogResource(lake=lake, kind=dg.EnvVar("B3_CATALOG")),
        "b3": B3PortfolioResource(base_url=dg.EnvVar("B3_BASE_URL")),
    }


defs = dg.Definitions(
    assets=[*portfolio_assets],
    jobs=[portfolio_job, refine_job, *automation.jobs],
    schedules=automation.schedules,
    sensors=automation.sensors,
    resources=build_resources(),
)
