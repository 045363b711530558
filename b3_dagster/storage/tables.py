"""The refined tables as Apache Iceberg tables, written through pyiceberg: one code path for both homes.

- Locally the catalog is pyiceberg's SQL catalog on a SQLite file under the lake root (``iceberg_catalog.db``) and
  the table files live inside the lake (``warehouse/``).
- On AWS it is pyiceberg's Glue catalog: each table is an Iceberg table of the Glue Data Catalog (Athena reads it
  natively), its files under ``<lake>/warehouse/``. No partition registration, no crawler.

What the pipeline relies on:
- **One commit per run.** ``commit`` replaces exactly the given keys (days, or months) with the given rows in one
  Iceberg transaction (an overwrite filtered on those keys). Readers see the table before or after it, never between.
- **Nothing is lost.** A commit whose rows leave a key empty, or hold rows outside the keys, is refused before
  anything is written. A process killed mid-commit leaves only unreferenced files, which readers never see (they
  read the files the current snapshot lists); ``maintain`` removes them and expires old snapshots.
- **Optimistic concurrency.** Two commits on the same table race on the catalog's pointer (and pyiceberg validates
  that no file the overwrite replaces changed meanwhile): the loser reloads the table and replays its whole
  overwrite on top (``commit_retries`` times), so concurrent runs end serialised; past the retries it fails with
  ``TableCommitConflict``, having committed nothing.
- **Readers never block the writer.** Data and metadata files are immutable; ``connect`` copies a snapshot's rows into
  an in-memory DuckDB, so a notebook holds no lock on anything.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable

import duckdb
import pyarrow as pa
import sqlglot
from pyiceberg.catalog import Catalog as IcebergCatalog
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError, ValidationException
from pyiceberg.expressions import AlwaysTrue, And, BooleanExpression, EqualTo, In, Or
from pyiceberg.expressions.visitors import bind
from pyiceberg.io.pyarrow import ArrowScan, _dataframe_to_data_files, _expression_to_complementary_pyarrow
from pyiceberg.table import Table, Transaction
from pyiceberg.transforms import IdentityTransform, MonthTransform, YearTransform

from b3_dagster.errors import (
    QueryError,
    TableCommitConflict,
    TableCommitRefused,
    TableError,
)
from b3_dagster.model import (
    CATALOG_DATABASE,
    CLASSIFICATION_SCHEMA,
    CLASSIFICATION_TABLE,
    DATE,
    ISSUER_CODE,
    PORTFOLIO_TABLE,
    REFINED_SCHEMA,
    VALID_FROM,
)
from b3_dagster.model import (  # issue 14's tables
    CLOSE_DATE, INDEX_CLOSES_SCHEMA, INDEX_CLOSES_TABLE, INDEX_CODE, INDEX_PORTFOLIO_SCHEMA,
    MEMBERSHIP_DATE, MEMBERSHIP_SCHEMA, RAW_DATE_COLUMN,
)
from b3_dagster.model import ANOMALY_SCHEMA, INDEX_SCHEMA, MONTH, YEAR  # issue 14's and seed 001's tables
from b3_dagster.storage.lake import Lake, LocalLake

log = logging.getLogger(__name__)

SQL_CATALOG_FILE = "iceberg_catalog.db"  # the local catalog (SQLite) under the lake root
WAREHOUSE_PREFIX = "warehouse/"  # the tables' data and metadata files, inside the lake
QUERY_DIALECT = "athena"  # what users and the seed pipelines write
CATALOG_KINDS = ("sql", "glue")
LEGACY_KINDS = {"duckdb": "sql"}  # B3_CATALOG=duckdb (before the Iceberg tables) means the local catalog
# Table properties: old metadata.json files are removed by the commit that makes them older than the last 50.
TABLE_PROPERTIES = {
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "50",
    "write.parquet.compression-codec": "zstd",
}
_TRANSFORMS = {"identity": IdentityTransform, "month": MonthTransform, "year": YearTransform}


@dataclass(frozen=True)
class TableDef:
    """A refined table: columns, hidden partitioning, and the columns a commit replaces by (its keys)."""

    database: str  # the name users write (``default``, ``b3_refined_db``)
    name: str
    schema: pa.Schema
    partitioning: tuple[tuple[str, str], ...]  # (column, transform) with transform in _TRANSFORMS
    replace_by: tuple[str, ...]  # a commit replaces whole values of these columns (a day; a year+month)
    sort_by: tuple[str, ...] = ()

    @property
    def qualified_name(self) -> str:
        return f"{self.database}.{self.name}"

    # ---- keys: the text form of a replace_by value (``2025-04-07``; ``2025/10``) -------------------------------
    def keys_of(self, rows: pa.Table) -> list[str]:
        columns = [rows.column(name).to_pylist() for name in self.replace_by]
        return sorted({"/".join(str(value) for value in values) for values in zip(*columns)})

    def parse_key(self, key: str) -> tuple[Any, ...]:
        parts = key.split("/")
        if len(parts) != len(self.replace_by):
            raise TableError(f"{key!r} is not a key of {self.qualified_name} ({'/'.join(self.replace_by)})")
        values = []
        for name, text in zip(self.replace_by, parts):
            kind = self.schema.field(name).type
            try:
                values.append(dt.date.fromisoformat(text) if kind == pa.date32() else int(text)
                              if pa.types.is_integer(kind) else text)
            except ValueError as error:
                raise TableError(f"{key!r} is not a key of {self.qualified_name}: {error}") from error
        return tuple(values)

    def filter_for(self, keys: Iterable[str]) -> BooleanExpression:
        """The Iceberg row filter that selects exactly ``keys``."""
        parsed = [self.parse_key(key) for key in sorted(set(keys))]
        if not parsed:
            raise TableError(f"no keys to select in {self.qualified_name}")
        literal = [[value.isoformat() if isinstance(value, dt.date) else value for value in values]
                   for values in parsed]
        if len(self.replace_by) == 1:
            return In(self.replace_by[0], {values[0] for values in literal})
        expression: BooleanExpression | None = None
        for values in literal:
            term: BooleanExpression = EqualTo(self.replace_by[0], values[0])
            for name, value in zip(self.replace_by[1:], values[1:]):
                term = And(term, EqualTo(name, value))
            expression = term if expression is None else Or(expression, term)
        return expression


# Seed 000's table: about 30 rows a day, 7,500 a year. year(Data) gives one small data file a year: measured on five
# years against month(Data) (60 files), commits and full reads (time travel) are faster and a day filter still
# prunes to one file (README, "Table format").
PORTFOLIO_TABLE_DEF = TableDef(CATALOG_DATABASE, PORTFOLIO_TABLE, REFINED_SCHEMA, partitioning=((DATE, "year"),),
                               replace_by=(DATE,), sort_by=(DATE, "Setor"))
# Seed 001's table keeps its year/month columns; they partition it, so its ``WHERE year = .. AND month = ..`` prunes.
INDEX_TABLE_DEF = TableDef("b3_refined_db", "ibov_refined", INDEX_SCHEMA,
                           partitioning=((YEAR, "identity"), (MONTH, "identity")), replace_by=(YEAR, MONTH),
                           sort_by=("data",))
# B3's sector classification, one vintage per file (a few thousand rows a vintage): one file per vintage year.
CLASSIFICATION_TABLE_DEF = TableDef("b3_refined_db", CLASSIFICATION_TABLE, CLASSIFICATION_SCHEMA,
                                    partitioning=((VALID_FROM, "year"),), replace_by=(VALID_FROM,),
                                    sort_by=(VALID_FROM, ISSUER_CODE))


@dataclass(frozen=True)
class CommitOutcome:
    table: str
    snapshot_id: int
    committed_at: dt.datetime
    keys: tuple[str, ...]
    rows: int
    attempts: int


@dataclass(frozen=True)
class MaintenanceOutcome:
    table: str
    expired_snapshots: int
    kept_snapshots: int
    removed_files: tuple[str, ...] = field(default_factory=tuple)


# ---- Every B3 index (issue 14): B3's official closes, membership, portfolios of any index, the anomaly score ----
# Rebuilt from raw at every run and replaced per index (or per update day, or per scored day) in one commit.
INDEX_CLOSES_TABLE_DEF = TableDef("b3_refined_db", INDEX_CLOSES_TABLE, INDEX_CLOSES_SCHEMA,
                                  partitioning=((INDEX_CODE, "identity"),), replace_by=(INDEX_CODE,),
                                  sort_by=(INDEX_CODE, CLOSE_DATE))
MEMBERSHIP_TABLE_DEF = TableDef("b3_refined_db", "index_membership", MEMBERSHIP_SCHEMA,
                                partitioning=((MEMBERSHIP_DATE, "year"),), replace_by=(MEMBERSHIP_DATE,),
                                sort_by=(MEMBERSHIP_DATE, INDEX_CODE))
INDEX_PORTFOLIOS_TABLE_DEF = TableDef("b3_refined_db", "index_portfolios", INDEX_PORTFOLIO_SCHEMA,
                                      partitioning=((INDEX_CODE, "identity"),), replace_by=(INDEX_CODE,),
                                      sort_by=(INDEX_CODE, RAW_DATE_COLUMN))
ANOMALY_TABLE_DEF = TableDef("b3_refined_db", "ibov_anomalies", ANOMALY_SCHEMA,
                             partitioning=((CLOSE_DATE, "year"),), replace_by=(CLOSE_DATE,), sort_by=(CLOSE_DATE,))
INDICES_TABLE_DEFS = (INDEX_CLOSES_TABLE_DEF, MEMBERSHIP_TABLE_DEF, INDEX_PORTFOLIOS_TABLE_DEF, ANOMALY_TABLE_DEF)
TABLE_DEFS = (PORTFOLIO_TABLE_DEF, INDEX_TABLE_DEF, CLASSIFICATION_TABLE_DEF, *INDICES_TABLE_DEFS)


def _millis_to_datetime(millis: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(millis / 1000, dt.timezone.utc)


class IcebergTables:
    """The refined tables in one Iceberg catalog (SQL catalog locally, Glue on AWS), over one lake."""

    def __init__(self, catalog: IcebergCatalog, lake: Lake, *, namespaces: dict[str, str] | None = None,
                 commit_retries: int = 3, description: str = ""):
        self.catalog = catalog
        self.lake = lake
        self.namespaces = dict(namespaces or {})
        self.commit_retries = commit_retries
        self.description = description or f"Iceberg catalog {catalog.name}"

    # ---- tables ------------------------------------------------------------------------------------------------
    def identifier(self, table: TableDef) -> tuple[str, str]:
        return (self.namespaces.get(table.database, table.database), table.name)

    def location(self, table: TableDef) -> str:
        namespace, name = self.identifier(table)
        return self.lake.uri(f"{WAREHOUSE_PREFIX}{namespace}/{name}")

    def load(self, table: TableDef) -> Table | None:
        try:
            return self.catalog.load_table(self.identifier(table))
        except NoSuchTableError:
            return None

    def ensure(self, table: TableDef) -> Table:
        """The table, created (with its partition spec) when it does not exist yet; a table made by an older
        version gains the columns added since (``evolve``)."""
        existing = self.load(table)
        if existing is not None:
            return self.evolve(table, existing)
        namespace, _ = self.identifier(table)
        try:
            self.catalog.create_namespace_if_not_exists(namespace)
        except Exception:
            # another writer (the demo's other process, another run) created it between the SQL catalog's check and
            # its insert, which then fails on the unique key (IntegrityError) instead of "already exists"
            if not self.catalog.namespace_exists(namespace):
                raise
        created = self.catalog.create_table_if_not_exists(self.identifier(table), schema=table.schema,
                                                          location=self.location(table), properties=TABLE_PROPERTIES)
        if not created.spec().fields:
            with created.update_spec() as spec:
                for column, transform in table.partitioning:
                    name = column if transform == "identity" else f"{column}_{transform}"
                    spec.add_field(column, _TRANSFORMS[transform](), name)
            created = self.catalog.load_table(self.identifier(table))
        return created

    def evolve(self, table: TableDef, iceberg: Table) -> Table:
        """Add the TableDef's columns that ``iceberg`` lacks (Iceberg schema evolution: a metadata-only commit; old
        data files read the new columns as null). Only optional columns are ever added; a table that lacks a
        required column, or whose column has another type, is a ``TableError`` pointing at ``rebuild-tables``."""
        present = {field.name: field for field in iceberg.schema().fields}
        added = [field for field in table.schema if field.name not in present]
        if not added:
            return iceberg
        required = [field.name for field in added if not field.nullable]
        if required:
            raise TableError(f"{table.qualified_name} was made by an older version and lacks the required "
                             f"column(s) {required}: run `b3-dagster rebuild-tables` to rebuild it from raw")
        try:
            with iceberg.update_schema() as update:
                update.union_by_name(table.schema)
        except (ValueError, ValidationException) as error:
            raise TableError(f"{table.qualified_name} cannot gain the column(s) {[f.name for f in added]} "
                             f"({error}): run `b3-dagster rebuild-tables` to rebuild it from raw") from error
        log.warning("%s: added column(s) %s; rows committed before hold null there until re-refined "
                    "(b3-dagster rebuild-tables)", table.qualified_name, [field.name for field in added])
        return self.catalog.load_table(self.identifier(table))

    # ---- writing -----------------------------------------------------------------------------------------------
    def commit(self, table: TableDef, rows: pa.Table, keys: Iterable[str],
               properties: dict[str, str] | None = None) -> CommitOutcome:
        """Replace the table's rows of ``keys`` with ``rows`` in one Iceberg commit. Refused (nothing written) when a
        key has no row in ``rows`` or a row lies outside ``keys``: an empty or partial input never deletes data."""
        keys = sorted(set(keys))
        if not keys:
            raise TableCommitRefused(f"{table.qualified_name}: a commit needs at least one key")
        rows = rows.select(table.schema.names).cast(table.schema)
        present = table.keys_of(rows)
        absent = [key for key in keys if key not in present]
        outside = [key for key in present if key not in keys]
        if absent or outside:
            raise TableCommitRefused(
                f"{table.qualified_name}: refused to commit; "
                + "; ".join(part for part in (
                    f"no rows for {absent[:10]}{' ...' if len(absent) > 10 else ''} (the commit would delete "
                    "them from the table)" if absent else "",
                    f"rows for {outside[:10]} that the run did not ask for" if outside else "") if part)
                + ". Nothing was committed.")
        row_filter = table.filter_for(keys)
        snapshot_properties = {"b3.keys": ",".join(keys[:50]) + (" ..." if len(keys) > 50 else ""),
                               **(properties or {})}
        attempt = 0
        while True:
            attempt += 1
            iceberg = self.ensure(table)
            try:
                with iceberg.transaction() as transaction:
                    _overwrite_in_one_snapshot(transaction, rows, row_filter, snapshot_properties, table.sort_by)
                break
            except (CommitFailedException, ValidationException) as error:  # the pointer moved; or files it read changed
                if attempt > self.commit_retries:
                    raise TableCommitConflict(
                        f"{table.qualified_name}: another commit changed the table {attempt} time(s) while this "
                        f"one was being written ({error}); nothing of this commit was committed. Run it again."
                    ) from error
                log.warning("commit to %s lost a race (%s); replaying it on the new snapshot", table.qualified_name,
                            error)
                time.sleep(0.05 * attempt)
        snapshot = self.catalog.load_table(self.identifier(table)).current_snapshot()
        return CommitOutcome(table.qualified_name, snapshot.snapshot_id, _millis_to_datetime(snapshot.timestamp_ms),
                             tuple(keys), rows.num_rows, attempt)

    # ---- reading -----------------------------------------------------------------------------------------------
    def snapshot_id_at(self, table: TableDef, as_of: "AsOf | None") -> int | None:
        """The snapshot current at ``as_of`` (None: the current one); None when the table had none then."""
        iceberg = self.load(table)
        if iceberg is None:
            return None
        if as_of is None:
            current = iceberg.current_snapshot()
            return current.snapshot_id if current else None
        if as_of.snapshot_id is not None:
            if iceberg.snapshot_by_id(as_of.snapshot_id) is not None:
                return as_of.snapshot_id
            return None
        found = iceberg.snapshot_as_of_timestamp(int(as_of.timestamp.timestamp() * 1000))
        return found.snapshot_id if found else None

    def scan(self, table: TableDef, *, snapshot_id: int | None = None,
             row_filter: BooleanExpression = AlwaysTrue()) -> pa.Table:
        """The table's rows (at ``snapshot_id``, default the current snapshot); an empty table before any commit."""
        iceberg = self.load(table)
        if iceberg is None or iceberg.current_snapshot() is None:
            return table.schema.empty_table()
        arrow = iceberg.scan(row_filter=row_filter, snapshot_id=snapshot_id).to_arrow()
        return _conform(table, arrow)

    def planned_files(self, table: TableDef, row_filter: BooleanExpression = AlwaysTrue()) -> int:
        """How many data files a scan with ``row_filter`` reads (partition pruning at work)."""
        iceberg = self.load(table)
        if iceberg is None:
            return 0
        return sum(1 for _ in iceberg.scan(row_filter=row_filter).plan_files())

    def snapshots(self, table: TableDef) -> list[dict[str, Any]]:
        iceberg = self.load(table)
        if iceberg is None:
            return []
        return [{"snapshot_id": s.snapshot_id, "committed_at": _millis_to_datetime(s.timestamp_ms),
                 "operation": s.summary.operation.value if s.summary else "", "keys": (s.summary or {}).get("b3.keys")}
                for s in iceberg.snapshots()]

    # ---- maintenance -------------------------------------------------------------------------------------------
    def referenced_files(self, iceberg: Table) -> set[str]:
        """Every file a live snapshot or the metadata still needs (metadata, manifest lists, manifests, data)."""
        metadata = iceberg.metadata
        files = {iceberg.metadata_location, *(entry.metadata_file for entry in metadata.metadata_log)}
        for snapshot in metadata.snapshots:
            files.add(snapshot.manifest_list)
            for manifest in snapshot.manifests(iceberg.io):
                files.add(manifest.manifest_path)
                for entry in manifest.fetch_manifest_entry(iceberg.io, discard_deleted=True):
                    files.add(entry.data_file.file_path)
        return files

    def maintain(self, table: TableDef, *, snapshot_retention: dt.timedelta, orphan_grace: dt.timedelta,
                 now: dt.datetime | None = None) -> MaintenanceOutcome:
        """Expire snapshots older than ``snapshot_retention`` (the current one always stays) and delete the files only
        they needed; then delete files under the table's location that nothing ever referenced (left by a killed
        commit) once older than ``orphan_grace`` (a commit in flight writes its files before it commits)."""
        iceberg = self.load(table)
        if iceberg is None:
            return MaintenanceOutcome(table.qualified_name, 0, 0)
        now = now or dt.datetime.now(dt.timezone.utc)
        before = len(iceberg.metadata.snapshots)
        referenced_before = {self.key_of_uri(uri) for uri in self.referenced_files(iceberg)}
        expire = iceberg.maintenance.expire_snapshots().older_than(now - snapshot_retention)
        expired = len(expire._snapshot_ids_to_expire)  # the builder exposes no count; read before commit
        if expired:
            expire.commit()
            iceberg = self.catalog.load_table(self.identifier(table))
        referenced = {self.key_of_uri(uri) for uri in self.referenced_files(iceberg)}
        obsolete = referenced_before - referenced  # only the expired snapshots needed them: gone at once
        prefix = self.lake_key(self.location(table)).rstrip("/") + "/"
        stale = [info.key for info in self.lake.list(prefix) if info.key not in referenced
                 and (info.key in obsolete or info.modified <= now - orphan_grace)]
        if stale:
            self.lake.delete(stale)
        log.info("%s: %d snapshot(s) expired, %d file(s) removed", table.qualified_name, expired, len(stale))
        return MaintenanceOutcome(table.qualified_name, expired, before - expired, tuple(stale))

    def lake_key(self, uri: str) -> str:
        root = self.lake.uri("x")[:-1]
        plain = uri[len("file://"):] if uri.startswith("file://") else uri
        if not plain.startswith(root):
            raise TableError(f"{uri} is outside the lake {root}")
        return plain[len(root):]

    def key_of_uri(self, uri: str) -> str:
        try:
            return self.lake_key(uri)
        except TableError:
            return uri


def _conform(table: TableDef, arrow: pa.Table) -> pa.Table:
    """``arrow`` as the TableDef's schema. A snapshot from before a column was added has none: an optional column
    reads as null; a required one is a ``TableError`` pointing at ``rebuild-tables``."""
    for field in table.schema:
        if field.name not in arrow.column_names:
            if not field.nullable:
                raise TableError(f"{table.qualified_name} lacks the column {field.name} (made by an older "
                                 "version): run `b3-dagster rebuild-tables` to rebuild it from raw")
            arrow = arrow.append_column(field.name, pa.nulls(arrow.num_rows, field.type))
    return arrow.select(table.schema.names).cast(table.schema)


def _overwrite_in_one_snapshot(transaction: Transaction, rows: pa.Table, row_filter: BooleanExpression,
                               snapshot_properties: dict[str, str], sort_by: tuple[str, ...]) -> None:
    """Copy-on-write overwrite as ONE snapshot: the data files that hold rows of ``row_filter`` are replaced by files
    holding their other rows plus ``rows``. (pyiceberg's ``overwrite`` makes two snapshots, a delete then an append,
    so time travel to a moment between them would show the days missing.) One file per partition results."""
    metadata = transaction.table_metadata
    schema = metadata.schema()
    io = transaction._table.io
    keep = _expression_to_complementary_pyarrow(bind(schema, row_filter, case_sensitive=True), schema)
    tasks = list(transaction._scan(row_filter=row_filter).plan_files())
    kept = [ArrowScan(table_metadata=metadata, io=io, projected_schema=schema, row_filter=AlwaysTrue())
            .to_table(tasks=[task]).filter(keep) for task in tasks]
    combined = pa.concat_tables([rows, *(part.select(rows.schema.names).cast(rows.schema) for part in kept)])
    if sort_by:
        combined = combined.sort_by([(name, "ascending") for name in sort_by])
    with transaction.update_snapshot(snapshot_properties=snapshot_properties).overwrite() as overwrite:
        for task in tasks:
            overwrite.delete_data_file(task.file)
        for data_file in _dataframe_to_data_files(table_metadata=metadata, df=combined, io=io,
                                                  write_uuid=uuid.uuid4(), counter=itertools.count(0)):
            overwrite.append_data_file(data_file)


# ---- opening the catalog ------------------------------------------------------------------------------------------
def normalise_kind(kind: str) -> str:
    kind = LEGACY_KINDS.get(kind, kind)
    if kind not in CATALOG_KINDS:
        raise ValueError(f"catalog kind {kind!r} is not one of {CATALOG_KINDS} (B3_CATALOG)")
    return kind


def open_tables(lake: Lake, kind: str = "sql", *, glue_database: str = CATALOG_DATABASE,
                region_name: str | None = None, endpoint_url: str | None = None, sql_uri: str | None = None,
                commit_retries: int = 3) -> IcebergTables:
    """The tables of ``lake`` in a SQL catalog (``sql``: SQLite under a local lake root) or the Glue Data Catalog
    (``glue``; ``glue_database`` is where ``default.*`` tables live, other databases keep their names)."""
    kind = normalise_kind(kind)
    warehouse = lake.uri(WAREHOUSE_PREFIX.rstrip("/"))
    if kind == "sql":
        from pyiceberg.catalog.sql import SqlCatalog

        if sql_uri is None:
            if not isinstance(lake, LocalLake):
                raise ValueError("the local (sql) catalog lives under a local lake root; with an s3:// lake use "
                                 "B3_CATALOG=glue")
            lake.root.mkdir(parents=True, exist_ok=True)
            sql_uri = f"sqlite:///{lake.root / SQL_CATALOG_FILE}"
        catalog = SqlCatalog("b3", uri=sql_uri, warehouse=f"file://{warehouse}" if "://" not in warehouse
                             else warehouse)
        return IcebergTables(catalog, lake, commit_retries=commit_retries,
                             description=f"Iceberg SQL catalog {sql_uri.removeprefix('sqlite:///')}")
    from pyiceberg.catalog.glue import GlueCatalog  # the local home needs no AWS libraries

    properties: dict[str, str] = {"warehouse": warehouse}
    if region_name:
        properties.update({"glue.region": region_name, "s3.region": region_name})
    if endpoint_url:
        properties.update({"glue.endpoint": endpoint_url, "s3.endpoint": endpoint_url})
    catalog = GlueCatalog("glue", **properties)
    return IcebergTables(catalog, lake, namespaces={CATALOG_DATABASE: glue_database}, commit_retries=commit_retries,
                         description=f"Iceberg tables in the Glue Data Catalog (database {glue_database})")


# ---- SQL over the tables ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AsOf:
    """A point in a table's history: a snapshot id, or a timestamp (the snapshot current then)."""

    snapshot_id: int | None = None
    timestamp: dt.datetime | None = None

    @classmethod
    def parse(cls, text: str) -> "AsOf":
        """``8312...`` (a snapshot id) or an ISO timestamp (``2026-11-30T10:15:00``, UTC unless it says otherwise)."""
        text = text.strip()
        if text.isdigit() and len(text) > 10:
            return cls(snapshot_id=int(text))
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError as error:
            raise QueryError(f"--as-of {text!r} is neither a snapshot id nor an ISO timestamp "
                             "(e.g. 2026-11-30T10:15:00Z)") from error
        return cls(timestamp=moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc))


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def connect(tables: IcebergTables, as_of: AsOf | None = None, *, external_access: bool = True,
            table_defs: Iterable[TableDef] = TABLE_DEFS, notes: list[str] | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection in which every refined table answers SQL under the name users write
    (``"default".tb_ibov_refined``, ``b3_refined_db.ibov_refined``), as of the current snapshot or ``as_of``.
    The rows are a copy of one snapshot: the connection holds no lock and never sees a half-committed table; open a
    new one to see later commits. ``external_access=False`` locks DuckDB's file and network access off (the tables
    are already in memory). A table with no snapshot (then) answers as an empty table, and ``notes`` (when given)
    gets a line saying so: an empty answer is never mistaken for an empty day."""
    connection = duckdb.connect()
    snapshot_time = as_of
    if as_of is not None and as_of.snapshot_id is not None:
        # a snapshot id belongs to one table: the others are read as they were at that snapshot's time
        owner = next((t for t in table_defs if tables.snapshot_id_at(t, as_of) is not None), None)
        if owner is None:
            raise QueryError(f"no table has a snapshot {as_of.snapshot_id} (b3-dagster snapshots lists them)")
        committed = tables.load(owner).snapshot_by_id(as_of.snapshot_id).timestamp_ms
        snapshot_time = AsOf(timestamp=_millis_to_datetime(committed))
    for table in table_defs:
        snapshot_id = tables.snapshot_id_at(table, snapshot_time)
        if snapshot_id is None and notes is not None:
            notes.append(f"{table.qualified_name} has no committed snapshot"
                         + (f" at {snapshot_time.timestamp.isoformat()}" if snapshot_time else "")
                         + f" in {tables.description}: it answers as an empty table")
        connection.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(table.database)}")
        _load_snapshot(connection, tables, table, snapshot_id)
    if not external_access:
        connection.execute("SET enable_external_access = false")
        connection.execute("SET lock_configuration = true")
    return connection


def _load_snapshot(connection: duckdb.DuckDBPyConnection, tables: IcebergTables, table: TableDef,
                   snapshot_id: int | None) -> None:
    """Copy one snapshot's rows into ``connection`` as the table users name. Local data files without delete files
    are read by DuckDB itself (about twice as fast as pyiceberg's Arrow scan of the same files); anything else (S3,
    delete files written by another engine) goes through pyiceberg's scan."""
    target = f"{_quote(table.database)}.{_quote(table.name)}"
    columns = ", ".join(_quote(name) for name in table.schema.names)
    iceberg = tables.load(table) if snapshot_id is not None else None
    if iceberg is not None:
        tasks = list(iceberg.scan(snapshot_id=snapshot_id).plan_files())
        paths = [task.file.file_path for task in tasks]
        # files written before a column was added lack it: pyiceberg's scan fills it (as null)
        evolved = len(iceberg.metadata.schemas) > 1 or not set(table.schema.names) <= set(
            iceberg.schema().column_names)
        if tasks and not evolved and all(not task.delete_files for task in tasks) and all(
                p.startswith(("file://", "/")) for p in paths):
            connection.execute(f"CREATE TABLE {target} AS SELECT {columns} FROM read_parquet(?)",
                               [[path.removeprefix("file://") for path in paths]])
            return
    arrow = tables.scan(table, snapshot_id=snapshot_id) if iceberg is not None else table.schema.empty_table()
    connection.register("incoming_rows", arrow)
    connection.execute(f"CREATE TABLE {target} AS SELECT {columns} FROM incoming_rows")
    connection.unregister("incoming_rows")


def to_duckdb_sql(sql: str) -> str:
    """Athena/Trino SQL -> DuckDB SQL (quotes ``default``, maps functions), only when sqlglot reads the text cleanly
    as one statement; anything else goes to DuckDB as the user wrote it, so an error names the user's own text (sqlglot
    would otherwise 'repair' a typo: ``SELEC x`` becomes ``SELEC AS x``)."""
    try:
        parsed = [statement for statement in sqlglot.parse(sql, read=QUERY_DIALECT) if statement is not None]
    except sqlglot.errors.SqlglotError:
        return sql
    if len(parsed) > 1:
        raise QueryError(f"expected one SQL statement, got {len(parsed)}: {sql.strip()!r}")
    # A bare expression is what sqlglot makes of a mistyped keyword (``SELEC x``): leave such text alone.
    if len(parsed) == 1 and not isinstance(parsed[0], (sqlglot.exp.Alias, sqlglot.exp.Condition)):
        return parsed[0].sql(dialect="duckdb")
    return sql


def run_query(connection: duckdb.DuckDBPyConnection, sql: str):
    """Run a query written in Athena SQL on a ``connect`` connection; errors name the user's SQL, not a rewrite."""
    try:
        return connection.sql(to_duckdb_sql(sql)).df()
    except duckdb.Error as error:
        raise QueryError(f"{str(error).splitlines()[0]} in: {sql.strip()!r}") from error
