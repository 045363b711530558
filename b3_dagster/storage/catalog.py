"""The catalog: named, queryable tables over the lake's refined layers.

Locally (the default) a DuckDB database file under the lake root holds ``"default".tb_ibov_refined`` as a real
table, updated one partition at a time when refined data changes, plus a partition registry that mirrors what
Glue keeps (partition values and location). Queries are written as users write them for Athena and translated
by sqlglot, so seed 000's examples (``SELECT * FROM default.tb_ibov_refined LIMIT 10``) run unchanged although
DuckDB reserves the word ``default``.

Why a table and not a view over ``refined/**/*.parquet``: one folder per day and sector makes tens of thousands
of tiny files after a few years, and scanning them all on every query takes seconds. The refined Parquet stays
the system of record; the table's rows for a partition are replaced from it whenever it is refined again.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import duckdb
import pandas as pd
import pyarrow as pa
import sqlglot

from b3_dagster.model import CATALOG_DATABASE
from b3_dagster.storage.layout import hive_escape, hive_unescape

log = logging.getLogger(__name__)

DUCKDB_FILE_NAME = "catalog.duckdb"
PARTITIONS_TABLE = "_partitions"
QUERY_DIALECT = "athena"  # what users and the seed pipelines write


@dataclass(frozen=True)
class TableSpec:
    """A catalogued table: its columns, and the columns that partition it in the lake (Hive folders)."""

    name: str
    schema: pa.Schema
    partition_columns: tuple[str, ...]
    location: str  # the lake folder that holds its Parquet (e.g. ``refined/``)
    database: str = CATALOG_DATABASE

    @property
    def qualified_name(self) -> str:
        return f"{self.database}.{self.name}"


@dataclass(frozen=True)
class PublishedPartition:
    values: tuple[Any, ...]  # in partition_columns order
    location: str


class CatalogError(RuntimeError):
    pass


class Catalog(ABC):
    """What the pipeline needs from a catalog + SQL engine (DuckDB locally; Glue + Athena on AWS)."""

    @abstractmethod
    def publish(self, spec: TableSpec, frame: pd.DataFrame, replace: dict[str, Any],
                partitions: list[PublishedPartition]) -> None:
        """Create the table if needed, then make the rows matching ``replace`` (e.g. ``{"Data": day}``) equal to
        ``frame`` and register ``partitions`` (dropping registered partitions that ``replace`` covers)."""

    def publish_many(self, spec: TableSpec, items: list[tuple[pd.DataFrame, dict[str, Any],
                                                              list[PublishedPartition]]]) -> None:
        """``publish`` for several partitions at once (a backfill). Engines that can, do it in one transaction."""
        for frame, replace, partitions in items:
            self.publish(spec, frame, replace, partitions)

    @abstractmethod
    def query(self, sql: str) -> pd.DataFrame:
        """Run a query written in Athena (Trino) SQL."""

    @abstractmethod
    def partitions(self, spec: TableSpec) -> list[PublishedPartition]: ...

    @property
    @abstractmethod
    def description(self) -> str: ...


def to_duckdb_sql(sql: str) -> str:
    """Athena/Trino SQL -> DuckDB SQL (quotes ``default``, maps functions)."""
    statements = sqlglot.transpile(sql, read=QUERY_DIALECT, write="duckdb")
    if len(statements) != 1:
        raise CatalogError(f"expected one SQL statement, got {len(statements)}")
    return statements[0]


def _duckdb_type(data_type: pa.DataType) -> str:
    mapping = {
        pa.string(): "VARCHAR", pa.large_string(): "VARCHAR", pa.float64(): "DOUBLE", pa.float32(): "FLOAT",
        pa.int64(): "BIGINT", pa.int32(): "INTEGER", pa.int16(): "SMALLINT", pa.bool_(): "BOOLEAN",
        pa.date32(): "DATE", pa.timestamp("us"): "TIMESTAMP",
    }
    if data_type not in mapping:
        raise CatalogError(f"no DuckDB type for {data_type}")
    return mapping[data_type]


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


class DuckDBCatalog(Catalog):
    """The local catalog: one DuckDB database file (by default ``<lake>/catalog.duckdb``)."""

    def __init__(self, path: str | Path, lock_timeout: float = 60.0):
        self.path = Path(path).expanduser().resolve()
        self.lock_timeout = lock_timeout

    @property
    def description(self) -> str:
        return f"DuckDB {self.path}"

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection. DuckDB lets one process write a database file at a time: wait for the lock
        (another run may be publishing) instead of failing at once."""
        if read_only and not self.path.exists():
            raise CatalogError(f"no catalog at {self.path} yet: materialise the table assets first")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                connection = duckdb.connect(str(self.path), read_only=read_only)
                break
            except duckdb.IOException as error:
                if "lock" not in str(error).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        try:
            yield connection
        finally:
            connection.close()

    def _ensure_table(self, connection: duckdb.DuckDBPyConnection, spec: TableSpec) -> str:
        table = f"{_quote(spec.database)}.{_quote(spec.name)}"
        connection.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(spec.database)}")
        columns = ", ".join(f"{_quote(f.name)} {_duckdb_type(f.type)}" for f in spec.schema)
        connection.execute(f"CREATE TABLE IF NOT EXISTS {table} ({columns})")
        existing = [row[0] for row in connection.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
            "ORDER BY ordinal_position", [spec.database, spec.name]).fetchall()]
        if existing != spec.schema.names:
            raise CatalogError(f"{spec.qualified_name} has columns {existing}, expected {spec.schema.names}; "
                               "drop the table (it is rebuilt from the refined layer) or migrate it")
        connection.execute(
            f"CREATE TABLE IF NOT EXISTS {_quote(spec.database)}.{PARTITIONS_TABLE} (table_name VARCHAR, "
            "partition_path VARCHAR, location VARCHAR, registered_at TIMESTAMP, PRIMARY KEY (table_name, "
            "partition_path))")
        return table

    @staticmethod
    def _partition_path(spec: TableSpec, values: tuple[Any, ...]) -> str:
        return "/".join(f"{name}={hive_escape(str(value))}" for name, value in zip(spec.partition_columns, values))

    def publish(self, spec: TableSpec, frame: pd.DataFrame, replace: dict[str, Any],
                partitions: list[PublishedPartition]) -> None:
        self.publish_many(spec, [(frame, replace, partitions)])

    def publish_many(self, spec: TableSpec, items: list[tuple[pd.DataFrame, dict[str, Any],
                                                              list[PublishedPartition]]]) -> None:
        """All items in one connection and one transaction: a backfill becomes visible at once, or not at all."""
        for _, replace, _ in items:
            unknown = [name for name in replace if name not in spec.schema.names]
            if unknown or not replace:
                raise CatalogError(f"replace must name columns of {spec.qualified_name}; got {list(replace)}")
        registry = f"{_quote(spec.database)}.{PARTITIONS_TABLE}"
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        with self.connect() as connection:
            table = self._ensure_table(connection, spec)
            connection.execute("BEGIN TRANSACTION")
            try:
                for frame, replace, partitions in items:
                    where = " AND ".join(f"{_quote(name)} = ?" for name in replace)
                    prefix = "/".join(f"{name}={hive_escape(str(replace[name]))}" for name in spec.partition_columns
                                      if name in replace)
                    connection.execute(f"DELETE FROM {table} WHERE {where}", list(replace.values()))
                    arrow = pa.Table.from_pandas(frame[spec.schema.names], schema=spec.schema, preserve_index=False)
                    connection.register("incoming_rows", arrow)
                    connection.execute(f"INSERT INTO {table} SELECT * FROM incoming_rows")
                    connection.unregister("incoming_rows")
                    connection.execute(f"DELETE FROM {registry} WHERE table_name = ? AND (partition_path = ? OR "
                                       "starts_with(partition_path, ?))", [spec.name, prefix, prefix + "/"])
                    if partitions:
                        connection.executemany(f"INSERT INTO {registry} VALUES (?, ?, ?, ?)", [
                            [spec.name, self._partition_path(spec, p.values), p.location, now] for p in partitions])
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        log.info("published %d partition group(s) of %s", len(items), spec.qualified_name)

    def partitions(self, spec: TableSpec) -> list[PublishedPartition]:
        if not self.path.exists():
            return []
        with self.connect(read_only=True) as connection:
            try:
                rows = connection.execute(
                    f"SELECT partition_path, location FROM {_quote(spec.database)}.{PARTITIONS_TABLE} "
                    "WHERE table_name = ? ORDER BY partition_path", [spec.name]).fetchall()
            except duckdb.CatalogException:
                return []
        return [PublishedPartition(tuple(hive_unescape(part.split("=", 1)[1]) for part in path.split("/")), location)
                for path, location in rows]

    def query(self, sql: str) -> pd.DataFrame:
        with self.connect(read_only=True) as connection:
            return connection.sql(to_duckdb_sql(sql)).df()
