"""Committing a run's staged rows to an Iceberg table, and the table maintenance job: shared by both pipelines.

The table-writing assets run in the ``iceberg_tables`` pool. ``deploy/dagster.yaml`` limits every pool to one step
at a time, so two runs never commit to the tables at once, whatever their partitions: the
``dagster/partition`` tag limit does not see range runs (a single-run backfill, the sensor's ranges carry no
``dagster/partition`` tag). Iceberg's optimistic commit is the second line: a commit that loses a race is replayed on
the new snapshot, or fails having committed nothing.
"""

import datetime as dt

import dagster as dg
from pydantic import Field

from b3_dagster.defs.failures import failure
from b3_dagster.defs.metadata import path
from b3_dagster.defs.resources import CatalogResource
from b3_dagster.storage import staging
from b3_dagster.storage.staging import StagingIncomplete
from b3_dagster.storage.tables import (
    TABLE_DEFS,
    CommitOutcome,
    IcebergTables,
    TableCommitConflict,
    TableCommitRefused,
    TableDef,
)

TABLE_POOL = "iceberg_tables"


def table_asset(*, kinds: set[str] = frozenset({"sql"}), decorator=dg.asset, **asset_args):
    """The decorator of an asset that commits to an Iceberg table: it runs in ``TABLE_POOL`` (one table-writing step
    at a time across runs, see above) and is of kind ``iceberg`` beside ``kinds``. ``decorator``: ``dg.asset``, or
    ``asset_with_checks`` for an asset that may leave a skipped check out (defs/checks.py)."""
    return decorator(pool=TABLE_POOL, kinds={"iceberg", *kinds}, **asset_args)


def staged_prefix(context: dg.AssetExecutionContext, dataset: str, lake) -> str:
    """The staging folder of this run's refine; a re-execution from failure finds its parent run's folder."""
    run = context.run
    for run_id in dict.fromkeys(filter(None, (context.run.run_id, run.parent_run_id, run.root_run_id))):
        prefix = staging.run_prefix(dataset, run_id)
        if lake.list(prefix):
            return prefix
    return staging.run_prefix(dataset, context.run.run_id)


def commit_run(context: dg.AssetExecutionContext, tables: IcebergTables, table_def: TableDef, dataset: str,
               keys: list[str]) -> CommitOutcome:
    """Commit the run's staged rows for ``keys`` (one Iceberg commit) or fail naming each refused key."""
    prefix = staged_prefix(context, dataset, tables.lake)
    try:
        return staging.commit_staged(tables, table_def, prefix, keys, {"dagster.run_id": context.run.run_id})
    except (StagingIncomplete, TableCommitRefused, TableCommitConflict) as error:
        raise failure(error, staging=path(tables.lake.uri(prefix))) from None


def snapshot_metadata(tables: IcebergTables, table_def: TableDef, outcome: CommitOutcome) -> dict:
    return {
        "snapshot_id": str(outcome.snapshot_id),  # text: a 64-bit id does not fit the UI's integers
        "committed_at": outcome.committed_at.isoformat(),
        "commit_attempts": outcome.attempts,
        "catalog": tables.description,
        "table_location": path(tables.location(table_def)),
    }


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


table_maintenance_schedule = dg.ScheduleDefinition(
    job=table_maintenance_job, cron_schedule="0 3 * * 0", execution_timezone="America/Sao_Paulo",
    description="Weekly Iceberg maintenance (Sunday 03:00, no B3 session).")
