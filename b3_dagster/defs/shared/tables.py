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


def refine_and_commit_asset(*, refined: dg.AssetSpec, table: dg.AssetSpec,
                            check_specs: list[dg.AssetCheckSpec], partitions_def: dg.PartitionsDefinition):
    """The decorator of a pipeline's refine and its table commit: the two assets ``refined`` (staged rows) and
    ``table`` (the Iceberg table, kind ``iceberg``), computed by ONE step in ``TABLE_POOL``.

    One step, not two: Dagster records an asset output of a single-run backfill as a materialisation of every
    partition in the run's range, and a skipped output would skip the table's step. This step records instead one
    ``AssetMaterialization`` per partition it wrote (``partition_materialisations``): a range over sessions without
    raw marks only the days refined, and a range of 821 sessions with 25 days of raw stores 50 events, not 1,642 (the
    demo's refine, benchmarks/demo.py). What one step costs: the refine holds the table pool's slot too (a Glue refine
    of minutes delays the other tables' commits), and a retry refines again. Either asset can run alone (a refine
    into staging; a commit of a re-executed run's staging, see ``staged_prefix``). The step keeps the refine's name,
    so its run config stays ``ops: {<refined>: {config: ...}}``."""
    return dg.multi_asset(
        name=refined.key.to_user_string(),
        specs=[refined.replace_attributes(skippable=True),
               table.replace_attributes(skippable=True, kinds={"iceberg", "sql"})],
        check_specs=check_specs,
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        can_subset=True,
        pool=TABLE_POOL,
    )


def selected(context: dg.AssetExecutionContext, asset: str) -> bool:
    """Whether the running step computes ``asset`` (a multi-asset step may compute a subset)."""
    return dg.AssetKey(asset) in context.selected_asset_keys


def partition_materialisations(asset: str, shared: dict, by_partition: dict[str, dict]):
    """One materialisation of ``asset`` per partition written, each with ``shared`` and its own metadata."""
    for partition, metadata in by_partition.items():
        yield dg.AssetMaterialization(asset_key=asset, partition=partition, metadata={**shared, **metadata})


def staged_prefix(context: dg.AssetExecutionContext, dataset: str, lake) -> str:
    """The staging folder of the newest refine in this run's line: its own, else that of the run it re-executes, and
    so on back to the root run. The newest, not the root's: a middle re-execution that refined again staged newer
    rows than the root's."""
    for run_id in _run_line(context):
        prefix = staging.run_prefix(dataset, run_id)
        if lake.list(prefix):
            return prefix
    return staging.run_prefix(dataset, context.run.run_id)


def _run_line(context: dg.AssetExecutionContext) -> list[str]:
    """This run's id, then each parent's (``parent_run_id``, read from the instance), then the root's."""
    line, run = [], context.run
    while run is not None and run.run_id not in line:
        line.append(run.run_id)
        run = context.instance.get_run_by_id(run.parent_run_id) if run.parent_run_id else None
    if context.run.root_run_id and context.run.root_run_id not in line:  # a parent deleted from the instance
        line.append(context.run.root_run_id)
    return line


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
