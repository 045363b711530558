"""GlueAthenaCatalog against moto (server mode): the Glue table and its partitions are really registered and read
back; Athena requests are checked for what they send (moto's Athena runs no SQL, so its empty answers prove
nothing and are never taken as a pass)."""

from __future__ import annotations

import datetime as dt
import uuid

import boto3
import pandas as pd
import pytest
import sqlglot
from sqlglot import exp

from b3_dagster.model import DATE, REFINED_COLUMNS, REFINED_PARTITION_COLUMNS, SECTOR
from b3_dagster.storage.catalog import CatalogError, PublishedPartition
from b3_dagster.storage.glue_catalog import GlueAthenaCatalog, restore_column_case, to_athena_sql
from b3_dagster.storage.lake import lake_from_uri
from b3_dagster.storage.layout import refined_day_prefix, refined_sector_folder
from b3_dagster.storage.portfolio_store import PortfolioStore, portfolio_table_spec, publish_portfolio_day
from b3_dagster.transforms.sectors import refine_portfolio

REGION = "us-east-1"
PROCESSING_DATE = dt.date(2025, 4, 8)


@pytest.fixture
def database():
    return f"b3_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def glue(aws_env):
    return boto3.client("glue", region_name=REGION)


@pytest.fixture
def store(bucket, aws_env, recorded_snapshots):
    store = PortfolioStore(lake_from_uri(f"s3://{bucket}/lake", endpoint_url=aws_env))
    for snapshot in recorded_snapshots:
        store.write_raw(snapshot)
        store.write_refined(snapshot.portfolio_date, refine_portfolio(snapshot.rows, PROCESSING_DATE))
    return store


@pytest.fixture
def catalog(database, aws_env, bucket):
    return GlueAthenaCatalog(lake=lake_from_uri(f"s3://{bucket}/lake", endpoint_url=aws_env), database=database,
                             workgroup="primary",
                             output_location=f"s3://{bucket}/athena-results/", endpoint_url=aws_env,
                             region_name=REGION)


def test_publish_creates_the_database_and_a_partitioned_parquet_table(catalog, store, glue, database, bucket,
                                                                      recorded_snapshots):
    day = recorded_snapshots[-1].portfolio_date
    publish_portfolio_day(store, catalog, day)

    assert glue.get_database(Name=database)["Database"]["Name"] == database
    table = glue.get_table(DatabaseName=database, Name="tb_ibov_refined")["Table"]
    spec = portfolio_table_spec()
    assert [key["Name"] for key in table["PartitionKeys"]] == [name.lower() for name in REFINED_PARTITION_COLUMNS]
    assert [key["Type"] for key in table["PartitionKeys"]] == ["date", "string"]
    columns = table["StorageDescriptor"]["Columns"]
    assert [c["Name"] for c in columns] == [n.lower() for n in spec.schema.names if n not in spec.partition_columns]
    assert [c["Type"] for c in columns] == ["double", "bigint", "bigint", "date", "int"]
    assert table["StorageDescriptor"]["Location"] == f"s3://{bucket}/lake/refined/"
    assert table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
    assert table["TableType"] == "EXTERNAL_TABLE"


def test_partitions_are_registered_with_their_real_locations(catalog, store, recorded_snapshots):
    spec = portfolio_table_spec()
    expected = []
    for snapshot in recorded_snapshots:
        day = snapshot.portfolio_date
        rows = publish_portfolio_day(store, catalog, day)
        expected += [((day.isoformat(), sector),
                      store.lake.uri(refined_day_prefix(day) + refined_sector_folder(sector))) for sector in rows[SECTOR]]
    registered = catalog.partitions(spec)
    assert [(p.values, p.location) for p in registered] == sorted(expected)
    assert len(registered) == sum(s.rows["segment"].nunique() for s in recorded_snapshots)
    # values are stored unescaped (what Athena returns for setor), locations escaped (what is in S3) ...
    slash = [p for p in registered if p.values == ("2025-04-07", "Bens Indls / Máqs e Equips")]
    assert slash and slash[0].location.endswith("/refined/Data=2025-04-07/Setor=Bens Indls %2F Máqs e Equips/")
    # ... and every location holds the partition's Parquet file in S3
    lake_keys = {info.key for info in store.lake.list("refined/")}
    for partition in registered:
        folder = partition.location[len(store.lake.root_uri) + 1:]
        assert folder + "part-0.parquet" in lake_keys, partition


def test_republishing_a_day_replaces_only_that_days_partitions_new_first(catalog, store, glue,
                                                                           recorded_snapshots):
    spec = portfolio_table_spec()
    old_day, day = (s.portfolio_date for s in recorded_snapshots[:2])
    publish_portfolio_day(store, catalog, old_day)
    publish_portfolio_day(store, catalog, day)
    before = catalog.partitions(spec)

    # the day is refined again without its first sector (e.g. a corrected raw partition)
    refined = store.read_refined(day)
    dropped = refined[SECTOR].iloc[0]
    store.write_refined(day, refined[refined[SECTOR] != dropped])
    calls = []
    catalog.glue.meta.events.register("before-parameter-build.glue.*",
                                      lambda event_name, **kwargs: calls.append(event_name.rsplit(".", 1)[-1]))
    publish_portfolio_day(store, catalog, day)

    after = catalog.partitions(spec)
    assert {p.values for p in before} - {p.values for p in after} == {(day.isoformat(), dropped)}
    assert {p.values for p in after if p.values[0] == old_day.isoformat()} == \
        {p.values for p in before if p.values[0] == old_day.isoformat()}
    assert calls.index("BatchUpdatePartition") < calls.index("BatchDeletePartition")
    assert "BatchCreatePartition" not in calls  # every remaining sector was already registered


def test_publish_refuses_bad_requests_before_registering_anything(catalog, glue, database):
    spec = portfolio_table_spec()
    frame = pd.DataFrame(columns=REFINED_COLUMNS)
    with pytest.raises(CatalogError, match="partition columns"):
        catalog.publish(spec, frame, {"soma_part": 1.0}, [])
    with pytest.raises(CatalogError, match="outside"):
        catalog.publish(spec, frame, {DATE: dt.date(2025, 4, 7)},
                        [PublishedPartition(("2025-04-08", "X"), "s3://b/refined/Data=2025-04-08/Setor=X/")])
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.get_table(DatabaseName=database, Name=spec.name)


def test_a_table_with_other_partition_keys_is_not_silently_rewritten(catalog, store, glue, database,
                                                                     recorded_snapshots):
    glue.create_database(DatabaseInput={"Name": database})
    glue.create_table(DatabaseName=database, TableInput={
        "Name": "tb_ibov_refined", "PartitionKeys": [{"Name": "dt", "Type": "string"}],
        "StorageDescriptor": {"Columns": [{"Name": "x", "Type": "string"}], "Location": "s3://elsewhere/"}})
    with pytest.raises(CatalogError, match="partitioned by"):
        publish_portfolio_day(store, catalog, recorded_snapshots[-1].portfolio_date)


def test_query_sends_athena_sql_to_the_configured_workgroup_and_output(store, aws_env, bucket, database):
    athena = boto3.client("athena", region_name=REGION)
    workgroup = f"wg_{uuid.uuid4().hex[:8]}"
    athena.create_work_group(Name=workgroup, Configuration={
        "ResultConfiguration": {"OutputLocation": f"s3://{bucket}/wg-default/"},
        "EnforceWorkGroupConfiguration": False})  # an enforced workgroup overrides the output (AWS rule)
    output = f"s3://{bucket}/athena-results/"
    catalog = GlueAthenaCatalog(lake=store.lake, database=database, workgroup=workgroup, output_location=output,
                                endpoint_url=aws_env, region_name=REGION)
    sql = ("SELECT Setor, SUM(soma_part) AS total_part FROM default.tb_ibov_refined "
           "WHERE Data = DATE '2025-04-07' GROUP BY Setor ORDER BY total_part DESC")
    # moto's Athena runs no SQL and writes no result file: the catalog must say so, not answer an empty frame
    with pytest.raises(CatalogError, match="wrote no result file"):
        catalog.query(sql)

    ids = athena.list_query_executions(WorkGroup=workgroup)["QueryExecutionIds"]
    assert len(ids) == 1
    execution = athena.get_query_execution(QueryExecutionId=ids[0])["QueryExecution"]
    assert execution["WorkGroup"] == workgroup
    assert execution["ResultConfiguration"]["OutputLocation"].startswith(output)
    assert execution["QueryExecutionContext"]["Database"] == database
    sent = sqlglot.parse_one(execution["Query"], read="athena")  # valid Athena (Trino) SQL
    assert [(t.db, t.name) for t in sent.find_all(exp.Table)] == [(database, "tb_ibov_refined")]
    assert sent.named_selects == ["Setor", "total_part"]


def test_default_qualifier_is_kept_when_the_glue_database_is_default():
    sql = "SELECT * FROM default.tb_ibov_refined LIMIT 10"
    assert to_athena_sql(sql, "default") == sql
    with pytest.raises(CatalogError):
        to_athena_sql("SELECT 1; SELECT 2", "x")


def test_result_columns_get_back_the_case_the_query_or_the_schema_wrote():
    lower = pd.DataFrame({"setor": ["A"], "total_part": [1.0], "data": [dt.date(2025, 4, 7)], "x": [1]})
    restored = restore_column_case(lower, "SELECT Setor, SUM(soma_part) AS total_part, Data, 1 AS x FROM t",
                                   REFINED_COLUMNS)
    assert list(restored.columns) == ["Setor", "total_part", "Data", "x"]
    star = pd.DataFrame(columns=[name.lower() for name in REFINED_COLUMNS])
    assert list(restore_column_case(star, "SELECT * FROM default.tb_ibov_refined", REFINED_COLUMNS).columns) == \
        REFINED_COLUMNS


def test_a_table_with_its_own_database_keeps_it(catalog, glue, database):
    from b3_dagster.storage.index_store import index_table_spec

    spec = index_table_spec()
    location = catalog.lake.uri("refined/ibov_index/year=2025/month=4/")
    catalog.publish(spec, pd.DataFrame(), {"year": 2025, "month": 4}, [PublishedPartition((2025, 4), location)])
    table = glue.get_table(DatabaseName=spec.database, Name=spec.name)["Table"]
    assert [key["Name"] for key in table["PartitionKeys"]] == ["year", "month"]
    assert [(p.values, p.location) for p in catalog.partitions(spec)] == [(("2025", "4"), location)]
    with pytest.raises(glue.exceptions.EntityNotFoundException):
        glue.get_table(DatabaseName=database, Name=spec.name)
    assert "b3_refined_db.ibov_refined" in to_athena_sql("SELECT * FROM b3_refined_db.ibov_refined", database)
