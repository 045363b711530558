"""Iceberg table maintenance: expire old snapshots, remove orphan files."""

import datetime as dt

import dagster as dg
from pydantic import Field

from b3_dagster.defs.resources import CatalogResource
from b3_dagster.defs.shared.tables import TABLE_POOL
from b3_dagster.storage import staging
from b3_dagster.storage.tables import TABLE_DEFS


class MaintenanceConfig(dg.Config):
    snapshot_retention_days: float | None = Field(
        default=None, description="Override the catalog's snapshot_retention_days for this run.")
    orphan_grace_hours: float | None = Field(
        default=None, description="Override the catalog's orphan_grace_hours for this run (0: remove every "
                                  "unreferenced file now; only when no run is writing).")


@dg.op(pool=TABLE_POOL, description="Expire old snapshots of every refined table, remove files no snapshot "
                                    "references (left by killed commits) and staging folders of runs that never "
                                    "committed.")
def maintain_tables(context: dg.OpExecutionContext, config: MaintenanceConfig, catalog: CatalogResource) -> None:
    tables = catalog.tables()
    retention = dt.timedelta(days=config.snapshot_retention_days if config.snapshot_retention_days is not None
                             else catalog.snapshot_retention_days)
    grace = dt.timedelta(hours=config.orphan_grace_hours if config.orphan_grace_hours is not None
                         else catalog.orphan_grace_hours)
    now = dt.datetime.now(dt.timezone.utc)
    for table_def in TABLE_DEFS:
        outcome = tables.maintain(table_def, snapshot_retention=retention, orphan_grace=grace, now=now)
        context.log.info(f"{outcome.table}: {outcome.expired_snapshots} snapshot(s) expired, "
                         f"{outcome.kept_snapshots} kept, {len(outcome.removed_files)} orphan file(s) removed")
    stale = staging.stale_runs(tables.lake, now - grace)
    tables.lake.delete(stale)
    context.log.info(f"{len(stale)} staging file(s) of runs that never committed removed")


@dg.job(description="Iceberg table maintenance: expire snapshots older than the retention, remove orphan files.")
def table_maintenance_job():
    maintain_tables()
