"""The Iceberg tables in the Glue Data Catalog over the S3 lake, through pyiceberg, against moto in server mode: the
same table code as the local SQL catalog. Athena reads such tables natively on AWS; moto runs no Athena SQL, so the
reading here is pyiceberg's scan through DuckDB (what b3_dagster.connect does on AWS too)."""

from __future__ import annotations

import datetime as dt
import uuid

import boto3
import pyarrow as pa
import pytest

from b3_dagster.storage import staging
from b3_dagster.storage.lakes import lake_from_uri
from b3_dagster.storage.portfolio_store import expected_refined
from b3_dagster.storage.tables import (
    INDEX_TABLE_DEF,
    PORTFOLIO_TABLE_DEF,
    AsOf,
    connect,
    open_tables,
    run_query,
)
from b3_dagster.transforms.sector_refine import refine_portfolio

REGION = "us-east-1"


@pytest.fixture
def database():
    return f"b3_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def tables(bucket, aws_env, database):
    return open_tables(lake_from_uri(f"s3://{bucket}/lake", endpoint_url=aws_env, region_name=REGION), "glue",
                       glue_database=database, region_name=REGION, endpoint_url=aws_env)


def _stage_and_commit(tables, snapshot, run_id: str, processing_date=dt.date(2025, 6, 1)):
    prefix = staging.run_prefix("ibov_sector_refined", run_id)
    refined = refine_portfolio(snapshot.rows, processing_date)
    staging.write_rows(tables.lake, prefix, pa.Table.from_pandas(refined, preserve_index=False))
    staging.write_expected(tables.lake, prefix, expected_refined(snapshot.rows))
    return staging.commit_staged(tables, PORTFOLIO_TABLE_DEF, prefix, [snapshot.portfolio_date.isoformat()])


def test_glue_catalog_creates_commits_overwrites_a_day_and_reads_back(tables, recorded_snapshots, database, bucket):
    commits = [_stage_and_commit(tables, snapshot, f"run-{n}") for n, snapshot in enumerate(recorded_snapshots)]
    glue = boto3.client("glue", region_name=REGION)
    table = glue.get_table(DatabaseName=database, Name="tb_ibov_refined")["Table"]
    assert table["Parameters"]["table_type"].upper() == "ICEBERG"
    assert table["Parameters"]["metadata_location"].startswith(f"s3://{bucket}/lake/warehouse/{database}/")
    assert glue.get_partitions(DatabaseName=database, TableName="tb_ibov_refined")["Partitions"] == [], \
        "no partition registration: Iceberg keeps its own"

    # the same day refined again (a later processing date): replaced in one commit, the other day untouched
    later = _stage_and_commit(tables, recorded_snapshots[-1], "run-again", dt.date(2025, 7, 1))
    sql = ("SELECT Data, COUNT(*) AS sectors, SUM(total_codigo) AS tickers, MAX(data_processamento) AS processed "
           "FROM default.tb_ibov_refined GROUP BY Data ORDER BY Data")
    answer = run_query(connect(tables), sql)
    assert [str(day.date()) for day in answer["Data"]] == [str(s.portfolio_date) for s in recorded_snapshots]
    assert answer["tickers"].tolist() == [len(s.rows) for s in recorded_snapshots]
    assert answer["sectors"].tolist() == [s.rows["segment"].nunique() for s in recorded_snapshots]
    assert [str(day.date()) for day in answer["processed"]] == ["2025-06-01", "2025-07-01"]
    before = run_query(connect(tables, AsOf(snapshot_id=commits[-1].snapshot_id)), sql)
    assert [str(day.date()) for day in before["processed"]] == ["2025-06-01", "2025-06-01"], "time travel"
    assert tables.snapshot_id_at(PORTFOLIO_TABLE_DEF, None) == later.snapshot_id
    assert not tables.lake.list("staging/"), "staging removed once committed"


def test_the_index_table_keeps_seed_001s_database_name(tables, bucket):
    rows = pa.Table.from_pylist([], schema=INDEX_TABLE_DEF.schema)
    with pytest.raises(Exception, match="no rows for"):
        tables.commit(INDEX_TABLE_DEF, rows, ["2025/10"])
    assert tables.identifier(INDEX_TABLE_DEF) == ("b3_refined_db", "ibov_refined")
    assert tables.location(INDEX_TABLE_DEF) == f"s3://{bucket}/lake/warehouse/b3_refined_db/ibov_refined"


def test_maintenance_on_s3_removes_orphans_and_keeps_the_table(tables, recorded_snapshots):
    for n in range(3):
        _stage_and_commit(tables, recorded_snapshots[0], f"run-{n}")
    orphan = "warehouse/" + tables.identifier(PORTFOLIO_TABLE_DEF)[0] + "/tb_ibov_refined/data/left-by-a-kill.parquet"
    tables.lake.write_bytes(orphan, b"PAR1 cut")
    outcome = tables.maintain(PORTFOLIO_TABLE_DEF, snapshot_retention=dt.timedelta(0),
                              orphan_grace=dt.timedelta(0))
    assert outcome.expired_snapshots == 2 and orphan in outcome.removed_files
    assert not tables.lake.exists(orphan)
    count = run_query(connect(tables), "SELECT COUNT(*) AS n FROM default.tb_ibov_refined")["n"][0]
    assert count == recorded_snapshots[0].rows["segment"].nunique()
