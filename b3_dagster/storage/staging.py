"""Run-scoped staging: where a refine leaves its rows for the table commit of the same run.

A refine (DuckDB in process, or the Glue Spark job) writes Parquet under ``staging/<dataset>/<run id>/``, then the
asset writes ``_expected.json``: for each key (a day, a month) the rows and column sums that the raw layer implies.
The table commit reads the staged rows and refuses, naming the key and the reason, when a key is absent, empty or
partial against that expectation, so a half-finished or failed refine never removes data from the table. Staging is
not a second copy of the table: it is deleted once committed, and ``maintenance`` removes what a killed run left.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from b3_dagster.errors import StagingIncomplete
from b3_dagster.storage.lake import Lake
from b3_dagster.storage.layout import hive_unescape, parquet_bytes, read_parquet_bytes

if TYPE_CHECKING:  # annotations only: the raw writers (`b3-dagster import-csv`) import this module for Expected,
    # and storage.tables brings pyiceberg, SQLAlchemy, DuckDB and sqlglot (about 0.6 s of the command's start)
    from b3_dagster.storage.tables import CommitOutcome, IcebergTables, TableDef

STAGING_PREFIX = "staging/"
EXPECTED_FILE = "_expected.json"
STAGED_FILE = "part-0.parquet"


@dataclass(frozen=True)
class Expected:
    """What one key's staged rows must hold: a row count and, per column, a sum."""

    rows: int
    sums: dict[str, float]


def run_prefix(dataset: str, run_id: str) -> str:
    if not run_id or "/" in run_id or not dataset or "/" in dataset:
        raise ValueError(f"invalid staging dataset/run {dataset!r}/{run_id!r}")
    return f"{STAGING_PREFIX}{dataset}/{run_id}/"


def write_rows(lake: Lake, prefix: str, rows: pa.Table) -> str:
    """The local engine's output: one Parquet file holding every staged row of the run."""
    key = prefix + STAGED_FILE
    lake.write_bytes(key, parquet_bytes(rows))
    return key


def write_expected(lake: Lake, prefix: str, expected: dict[str, Expected]) -> str:
    """Written last, after the rows: its presence says the refine finished."""
    key = prefix + EXPECTED_FILE
    body = {key_: {"rows": value.rows, "sums": value.sums} for key_, value in sorted(expected.items())}
    lake.write_bytes(key, json.dumps(body, indent=1, sort_keys=True).encode())
    return key


def read_expected(lake: Lake, prefix: str) -> dict[str, Expected] | None:
    key = prefix + EXPECTED_FILE
    if not lake.exists(key):
        return None
    body = json.loads(lake.read_bytes(key))
    return {name: Expected(int(value["rows"]), {k: float(v) for k, v in value["sums"].items()})
            for name, value in body.items()}


def read_rows(lake: Lake, prefix: str, schema: pa.Schema) -> pa.Table:
    """Every staged Parquet file under ``prefix``, typed as ``schema``. A Spark job writes Hive folders
    (``Data=2025-04-07/part-*.parquet``, the partition column only in the folder name): such columns are filled from
    the folder. Markers (``_SUCCESS``, ``.crc``) are skipped; an unreadable file is an error naming it."""
    tables = []
    for info in lake.list(prefix):
        relative = info.key[len(prefix):]
        name = relative.rsplit("/", 1)[-1]
        if not name.endswith(".parquet") or name.startswith(("_", ".")):
            continue
        try:
            table = read_parquet_bytes(lake.read_bytes(info.key))
        except (pa.ArrowException, OSError) as error:
            raise StagingIncomplete(f"staged file {lake.uri(info.key)} is not readable Parquet (a refine killed "
                                    f"mid-write?): {error}") from error
        for folder in relative.split("/")[:-1]:
            column, equals, value = folder.partition("=")
            if equals and column in schema.names and column not in table.column_names:
                field = schema.field(column)
                text = hive_unescape(value)
                parsed = dt.date.fromisoformat(text) if field.type == pa.date32() else text
                table = table.append_column(column, pa.array([parsed] * table.num_rows, field.type))
        missing = [column for column in schema.names if column not in table.column_names]
        if missing:
            raise StagingIncomplete(f"staged file {lake.uri(info.key)} lacks columns {missing}")
        tables.append(table.select(schema.names).cast(schema))
    return pa.concat_tables(tables) if tables else schema.empty_table()


def problems(table: TableDef, rows: pa.Table, keys: list[str], expected: dict[str, Expected] | None) -> list[str]:
    """Why the staged ``rows`` cannot replace ``keys`` in ``table``: one line per key (empty list: committable)."""
    if expected is None:
        return [f"{key}: the refine of this run did not finish (no {EXPECTED_FILE} in staging)" for key in keys]
    found: dict[str, pa.Table] = {}
    if rows.num_rows:
        key_column = pa.array(["/".join(str(v) for v in values) for values in
                               zip(*(rows.column(name).to_pylist() for name in table.replace_by))])
        for key in set(key_column.to_pylist()):
            found[key] = rows.filter(pc.equal(key_column, key))
    lines = []
    for key in keys:
        want = expected.get(key)
        got = found.get(key)
        if want is None:
            lines.append(f"{key}: the refine did not say what to expect for it (not refined by this run)")
        elif got is None or got.num_rows == 0:
            lines.append(f"{key}: absent or empty in staging (raw implies {want.rows} rows)")
        elif got.num_rows != want.rows:
            lines.append(f"{key}: partial, {got.num_rows} staged rows where raw implies {want.rows}")
        else:
            for column, total in want.sums.items():
                staged = pc.sum(got.column(column)).as_py() or 0
                if abs(float(staged) - total) > 1e-6 * max(1.0, abs(total)):
                    lines.append(f"{key}: {column} sums to {staged} in staging where raw implies {total}")
    outside = sorted(set(found) - set(keys))
    if outside:
        lines.append(f"staging holds rows for {outside[:5]} that this run did not ask for")
    return lines


def remove(lake: Lake, prefix: str) -> None:
    lake.delete([info.key for info in lake.list(prefix)])


def stale_runs(lake: Lake, older_than: dt.datetime) -> list[str]:
    """Keys under staging/ last written before ``older_than`` (left by runs killed before their commit)."""
    return [info.key for info in lake.list(STAGING_PREFIX) if info.modified < older_than]


def commit_staged(tables: IcebergTables, table: TableDef, prefix: str, keys: list[str],
                  properties: dict[str, str] | None = None) -> CommitOutcome:
    """Commit the run's staged rows for ``keys`` in one Iceberg transaction, then delete the staging folder.
    Refused (``StagingIncomplete``, nothing committed) when any key is absent, empty or partial."""
    lake = tables.lake
    rows = read_rows(lake, prefix, table.schema)
    found = problems(table, rows, keys, read_expected(lake, prefix))
    if found:
        raise StagingIncomplete(
            f"refused to commit {table.qualified_name}: " + "; ".join(found[:10])
            + (f"; and {len(found) - 10} more" if len(found) > 10 else "")
            + f". The table keeps its last committed rows for these keys; nothing was committed "
              f"(staging: {lake.uri(prefix)}). Refine them again.")
    outcome = tables.commit(table, rows, keys, properties)
    remove(lake, prefix)
    return outcome
