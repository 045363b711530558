"""The AWS catalog: Glue Data Catalog tables over the S3 lake, queried with Athena (through awswrangler).

The data files are already in S3 (``PortfolioStore`` writes them through ``S3Lake``); publishing only registers:
the database and the table are created (or updated) when needed, and each day's partitions are registered
explicitly, so no crawler is needed and a partition is queryable as soon as ``publish`` returns. New partitions
are registered first and the stale ones of the replaced day removed afterwards, so a query never finds the day
missing.

Glue lower-cases column and partition-key names (``Setor`` becomes ``setor``). Athena resolves identifiers
case-insensitively, so queries written with ``Setor`` still run; ``query`` gives the result columns back the case
the query (or the table's schema) wrote them in, so callers see the same frame locally and on AWS.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import boto3
import pandas as pd
import pyarrow as pa
import sqlglot
from sqlglot import exp
from botocore.exceptions import ClientError

from b3_dagster.model import CATALOG_DATABASE
from b3_dagster.storage.catalog import QUERY_DIALECT, Catalog, CatalogError, PublishedPartition, TableSpec
from b3_dagster.storage.lake import Lake

log = logging.getLogger(__name__)

PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
CREATE_BATCH = 100  # BatchCreatePartition accepts at most 100 partitions
DELETE_BATCH = 25  # BatchDeletePartition accepts at most 25

_GLUE_TYPES = {
    pa.string(): "string", pa.large_string(): "string", pa.float64(): "double", pa.float32(): "float",
    pa.int64(): "bigint", pa.int32(): "int", pa.int16(): "smallint", pa.bool_(): "boolean", pa.date32(): "date",
    pa.timestamp("us"): "timestamp",
}


def glue_type(data_type: pa.DataType) -> str:
    if data_type not in _GLUE_TYPES:
        raise CatalogError(f"no Glue type for {data_type}")
    return _GLUE_TYPES[data_type]


def glue_columns(spec: TableSpec) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(data columns, partition keys) as Glue stores them: lower-case names, Hive types."""
    by_name = {field.name: field for field in spec.schema}
    missing = [name for name in spec.partition_columns if name not in by_name]
    if missing:
        raise CatalogError(f"partition columns {missing} are not columns of {spec.qualified_name}")
    data = [{"Name": f.name.lower(), "Type": glue_type(f.type)} for f in spec.schema
            if f.name not in spec.partition_columns]
    keys = [{"Name": name.lower(), "Type": glue_type(by_name[name].type)} for name in spec.partition_columns]
    return data, keys


def table_input(spec: TableSpec, location: str) -> dict[str, Any]:
    """The Glue TableInput of an external, Hive-partitioned Parquet table at ``location``."""
    data, keys = glue_columns(spec)
    return {
        "Name": spec.name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"classification": "parquet", "EXTERNAL": "TRUE", "parquet.compression": "SNAPPY"},
        "PartitionKeys": keys,
        "StorageDescriptor": {
            "Columns": data,
            "Location": location,
            "InputFormat": PARQUET_INPUT,
            "OutputFormat": PARQUET_OUTPUT,
            "SerdeInfo": {"SerializationLibrary": PARQUET_SERDE, "Parameters": {"serialization.format": "1"}},
            "Compressed": True,
        },
    }


def partition_value(value: Any) -> str:
    """Glue keeps partition values as strings: dates as YYYY-MM-DD, text unescaped (``Bens Indls / Máqs...``)."""
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def partition_input(spec: TableSpec, partition: PublishedPartition) -> dict[str, Any]:
    if len(partition.values) != len(spec.partition_columns):
        raise CatalogError(f"partition {partition.values} does not match keys {spec.partition_columns}")
    descriptor = table_input(spec, partition.location)["StorageDescriptor"]
    return {"Values": [partition_value(value) for value in partition.values], "StorageDescriptor": descriptor}


def replace_expression(spec: TableSpec, replace: dict[str, Any]) -> str:
    """The Glue partition filter selecting the partitions a ``replace`` covers (``data = '2025-04-07'``)."""
    unknown = [name for name in replace if name not in spec.partition_columns]
    if unknown or not replace:
        raise CatalogError(f"replace must name partition columns of {spec.qualified_name} "
                           f"({list(spec.partition_columns)}); got {list(replace)}")
    return " AND ".join(f"{name.lower()} = '{partition_value(value)}'".replace("\\", "\\\\")
                        for name, value in replace.items())


def covered(spec: TableSpec, values: list[str], replace: dict[str, Any]) -> bool:
    by_key = dict(zip(spec.partition_columns, values))
    return all(by_key[name] == partition_value(value) for name, value in replace.items())


def to_athena_sql(sql: str, database: str) -> str:
    """Users write ``default.tb_ibov_refined`` (seed 000's queries); on AWS the tables live in the configured Glue
    database, so the ``default`` qualifier is pointed there. The statement is parsed as Athena (Trino) SQL."""
    try:
        statements = sqlglot.parse(sql, read=QUERY_DIALECT)
    except sqlglot.errors.ParseError as error:
        raise CatalogError(f"not valid Athena SQL: {error}") from error
    if len(statements) != 1 or statements[0] is None:
        raise CatalogError(f"expected one SQL statement, got {len(statements)}")
    tree = statements[0]
    if database == CATALOG_DATABASE:
        return sql
    for table in tree.find_all(exp.Table):
        if table.db and table.db.lower() == CATALOG_DATABASE and not table.catalog:
            table.set("db", exp.to_identifier(database))
    return tree.sql(dialect=QUERY_DIALECT)


def restore_column_case(frame: pd.DataFrame, sql: str, known: list[str]) -> pd.DataFrame:
    """Athena answers with lower-case column names; give back the names as the query wrote them (its select
    list), else as the table schema declares them (``SELECT *``)."""
    names = {name.lower(): name for name in known}
    try:
        selects = sqlglot.parse_one(sql, read=QUERY_DIALECT).named_selects
    except sqlglot.errors.ParseError:
        selects = []
    names.update({name.lower(): name for name in selects if name and name != "*"})
    return frame.rename(columns={column: names.get(column.lower(), column) for column in frame.columns})


@contextlib.contextmanager
def _wrangler_endpoints(wr: Any, endpoint_url: str | None):
    """awswrangler takes custom endpoints only from its global config: set them for one call, then restore."""
    names = ("athena_endpoint_url", "s3_endpoint_url", "glue_endpoint_url", "sts_endpoint_url")
    if not endpoint_url:
        yield
        return
    previous = {name: getattr(wr.config, name) for name in names}
    for name in names:
        setattr(wr.config, name, endpoint_url)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                wr.config.reset(name)
            else:
                setattr(wr.config, name, value)


class GlueAthenaCatalog(Catalog):
    """Glue Data Catalog + Athena over an ``S3Lake``."""

    def __init__(self, lake: Lake, database: str = "default", workgroup: str = "primary",
                 output_location: str | None = None, endpoint_url: str | None = None,
                 region_name: str | None = None, known_columns: list[str] | None = None):
        self.lake = lake
        self.database = database
        self.workgroup = workgroup
        self.output_location = output_location
        self.endpoint_url = endpoint_url
        self.session = boto3.session.Session(region_name=region_name)
        self.glue = self.session.client("glue", endpoint_url=endpoint_url)
        if known_columns is None:
            from b3_dagster.model import REFINED_COLUMNS

            known_columns = list(REFINED_COLUMNS)
        self.known_columns = known_columns

    @property
    def description(self) -> str:
        return f"Glue database {self.database} + Athena workgroup {self.workgroup}"

    # ---- catalog -----------------------------------------------------------------------------------------------
    def _database_for(self, spec: TableSpec) -> str:
        """Tables that users name ``default.<table>`` live in the configured Glue database (``default`` is shared
        by everything in an account); a table with its own database (``b3_refined_db``) keeps it."""
        return self.database if spec.database == CATALOG_DATABASE else spec.database

    def ensure_table(self, spec: TableSpec) -> None:
        database = self._database_for(spec)
        try:
            self.glue.get_database(Name=database)
        except self.glue.exceptions.EntityNotFoundException:
            self.glue.create_database(DatabaseInput={"Name": database,
                                                     "Description": "b3-dagster lakehouse tables"})
        wanted = table_input(spec, self.lake.uri(spec.location.rstrip("/")) + "/")
        try:
            existing = self.glue.get_table(DatabaseName=database, Name=spec.name)["Table"]
        except self.glue.exceptions.EntityNotFoundException:
            self.glue.create_table(DatabaseName=database, TableInput=wanted)
            log.info("created Glue table %s.%s at %s", database, spec.name, wanted["StorageDescriptor"]["Location"])
            return
        same = (existing.get("PartitionKeys") == wanted["PartitionKeys"]
                and existing["StorageDescriptor"].get("Columns") == wanted["StorageDescriptor"]["Columns"]
                and existing["StorageDescriptor"].get("Location") == wanted["StorageDescriptor"]["Location"])
        if not same:
            if [key["Name"] for key in existing.get("PartitionKeys", [])] != [k["Name"] for k in wanted["PartitionKeys"]]:
                raise CatalogError(f"Glue table {database}.{spec.name} is partitioned by "
                                   f"{[k['Name'] for k in existing.get('PartitionKeys', [])]}, expected "
                                   f"{[k['Name'] for k in wanted['PartitionKeys']]}; drop it (it is rebuilt from the "
                                   "refined layer) or migrate it")
            self.glue.update_table(DatabaseName=database, TableInput=wanted)
            log.info("updated Glue table %s.%s", database, spec.name)

    def _get_partitions(self, spec: TableSpec, expression: str | None = None) -> list[dict[str, Any]]:
        params = {"DatabaseName": self._database_for(spec), "TableName": spec.name}
        if expression:
            params["Expression"] = expression
        found = []
        for page in self.glue.get_paginator("get_partitions").paginate(**params):
            found.extend(page.get("Partitions", []))
        return found

    def publish(self, spec: TableSpec, frame: pd.DataFrame, replace: dict[str, Any],
                partitions: list[PublishedPartition]) -> None:
        """Register ``partitions`` and drop the other registered partitions that ``replace`` covers. ``frame`` is not
        used: its rows are already in S3 under the partitions' locations, and Glue keeps no rows."""
        expression = replace_expression(spec, replace)
        inputs = [partition_input(spec, partition) for partition in partitions]
        strays = [p["Values"] for p in inputs if not covered(spec, p["Values"], replace)]
        if strays:
            raise CatalogError(f"partitions {strays[:3]} are outside {replace}; nothing was registered")
        self.ensure_table(spec)
        database = self._database_for(spec)
        registered = {tuple(p["Values"]) for p in self._get_partitions(spec, expression)
                      if covered(spec, p["Values"], replace)}  # re-checked: never trust a filter blindly
        new = [p for p in inputs if tuple(p["Values"]) not in registered]
        kept = [p for p in inputs if tuple(p["Values"]) in registered]
        stale = sorted(registered - {tuple(p["Values"]) for p in inputs})

        for start in range(0, len(new), CREATE_BATCH):
            answer = self.glue.batch_create_partition(DatabaseName=database, TableName=spec.name,
                                                      PartitionInputList=new[start:start + CREATE_BATCH])
            self._raise_on_errors("register", answer.get("Errors", []))
        if kept:
            entries = [{"PartitionValueList": p["Values"], "PartitionInput": p} for p in kept]
            for start in range(0, len(entries), CREATE_BATCH):
                answer = self.glue.batch_update_partition(DatabaseName=database, TableName=spec.name,
                                                          Entries=entries[start:start + CREATE_BATCH])
                self._raise_on_errors("update", answer.get("Errors", []))
        for start in range(0, len(stale), DELETE_BATCH):
            answer = self.glue.batch_delete_partition(
                DatabaseName=database, TableName=spec.name,
                PartitionsToDelete=[{"Values": list(values)} for values in stale[start:start + DELETE_BATCH]])
            self._raise_on_errors("remove", answer.get("Errors", []))
        log.info("Glue %s.%s where %s: %d partitions registered, %d updated, %d removed", database, spec.name,
                 replace, len(new), len(kept), len(stale))

    @staticmethod
    def _raise_on_errors(action: str, errors: list[dict[str, Any]]) -> None:
        if errors:
            first = errors[0]
            detail = first.get("ErrorDetail", {})
            raise CatalogError(f"Glue could not {action} {len(errors)} partition(s), e.g. "
                               f"{first.get('PartitionValues')}: {detail.get('ErrorCode')} {detail.get('ErrorMessage')}")

    def partitions(self, spec: TableSpec) -> list[PublishedPartition]:
        try:
            found = self._get_partitions(spec)
        except self.glue.exceptions.EntityNotFoundException:
            return []
        result = [PublishedPartition(tuple(p["Values"]), p["StorageDescriptor"]["Location"]) for p in found]
        return sorted(result, key=lambda partition: partition.values)

    # ---- SQL ---------------------------------------------------------------------------------------------------
    def query(self, sql: str) -> pd.DataFrame:
        """Run Athena SQL in the configured workgroup (results under ``output_location``, or the workgroup's)."""
        import awswrangler as wr

        with _wrangler_endpoints(wr, self.endpoint_url):
            try:
                frame = wr.athena.read_sql_query(to_athena_sql(sql, self.database), database=self.database,
                                                 workgroup=self.workgroup, s3_output=self.output_location,
                                                 ctas_approach=False, boto3_session=self.session)
            except ClientError as error:
                raise CatalogError(f"Athena refused the query: {error}") from error
            except wr.exceptions.NoFilesFound as error:
                # Athena writes a result file (at least a header) for every successful query, even with no rows
                raise CatalogError(f"Athena reported the query done but wrote no result file ({error}); check "
                                   f"the workgroup {self.workgroup}'s output location and permissions") from error
            except wr.exceptions.QueryFailed as error:
                raise CatalogError(f"Athena could not run the query: {error}") from error
        return restore_column_case(frame, sql, self.known_columns)
