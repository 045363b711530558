"""Iceberg commits from an asset: the table pool, staged files, snapshot metadata."""

import dagster as dg
import pandas as pd
import pyarrow as pa

from b3_dagster.defs.resources import LakeResource
from b3_dagster.defs.shared.failures import failure
from b3_dagster.defs.shared.metadata import path
from b3_dagster.errors import StagingIncomplete, TableCommitConflict, TableCommitRefused
from b3_dagster.storage import staging
from b3_dagster.storage.b3_indices_store import B3IndicesStore
from b3_dagster.storage.tables import CommitOutcome, IcebergTables, TableDef

TABLE_POOL = "iceberg_tables"


def table_asset(*, kinds: set[str] = frozenset({"sql"}), decorator=dg.asset, **asset_args):
    """The decorator of an asset that commits to an Iceberg table: it runs in ``TABLE_POOL`` (one table-writing step
    at a time across runs, see above) and is of kind ``iceberg`` beside ``kinds``. ``decorator``: ``dg.asset``, or
    ``asset_with_checks`` for an asset that may leave a skipped check out (defs/portfolio/checks.py)."""
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


def indices_store(lake: LakeResource) -> B3IndicesStore:
    return B3IndicesStore(lake.lake())


def commit_rows(tables, table_def, rows: pd.DataFrame, keys: list[str], context) -> dict:
    arrow = pa.Table.from_pandas(rows[table_def.schema.names], schema=table_def.schema, preserve_index=False)
    outcome = tables.commit(table_def, arrow, keys, {"dagster.run_id": context.run.run_id})
    return {"table": table_def.qualified_name, **snapshot_metadata(tables, table_def, outcome),
            "dagster/row_count": outcome.rows}
