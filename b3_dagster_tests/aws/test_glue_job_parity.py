"""The Glue (Spark) refine job, run with local PySpark 3.5 (Glue 5.0's Spark line): it gives exactly the rows of
the local DuckDB refine on the recorded days, staged by day (a sector is a column, never a folder), and once
committed the very same table."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from b3_dagster.glue_jobs import refine_sectors
import pyarrow as pa

from b3_dagster.model import DATE, REFINED_SCHEMA, SECTOR
from b3_dagster.storage import staging
from b3_dagster.storage.glue_job import refine_job_arguments, stage_sector_mapping
from b3_dagster.storage.lake import LocalLake
from b3_dagster.storage.portfolio_store import PortfolioStore, expected_refined
from b3_dagster.storage.tables import PORTFOLIO_TABLE_DEF, open_tables
from b3_dagster.transforms.sector_refine import mapping_table, refine_portfolio, shipped_sector_mapping


def staging_prefix(token: str) -> str:
    return staging.run_prefix("ibov_sector_refined", token)


def read_staged_refined(lake, prefix):
    return (staging.read_rows(lake, prefix, REFINED_SCHEMA).to_pandas(date_as_object=True)
            .sort_values([DATE, SECTOR]).reset_index(drop=True))

PROCESSING_DATE = dt.date(2025, 4, 8)


def _argv(arguments: dict[str, str]) -> list[str]:
    # as Glue passes them: its own arguments around ours, each "--name value"
    argv = ["--JOB_ID", "j_1", "--job-bookmark-option", "job-bookmark-disable"]
    for name, value in arguments.items():
        argv += [name, value]
    return argv + ["--JOB_RUN_ID", "jr_1"]


@pytest.fixture(scope="module")
def refined_by_spark(tmp_path_factory, spark, recorded_snapshots):
    """Raw partitions of the recorded days in a lake, and the Spark job's staged output over them."""
    lake = LocalLake(tmp_path_factory.mktemp("spark-lake"))
    store = PortfolioStore(lake)
    for snapshot in recorded_snapshots:
        store.write_raw(snapshot)
    days = [snapshot.portfolio_date for snapshot in recorded_snapshots]
    prefix = staging_prefix("parity")
    raw = pd.concat([snapshot.rows for snapshot in recorded_snapshots], ignore_index=True)
    stage_sector_mapping(lake, prefix, mapping_table(shipped_sector_mapping(raw)))
    rows = refine_sectors.main(_argv(refine_job_arguments(lake, days, PROCESSING_DATE, prefix)), spark=spark)
    return store, days, prefix, rows


@pytest.mark.slow
def test_spark_job_rows_equal_the_local_refine_exactly(refined_by_spark, recorded_snapshots):
    store, days, prefix, rows = refined_by_spark
    raw = pd.concat([snapshot.rows for snapshot in recorded_snapshots], ignore_index=True)
    expected = refine_portfolio(raw, PROCESSING_DATE).sort_values([DATE, SECTOR]).reset_index(drop=True)

    staged = read_staged_refined(store.lake, prefix)

    mapping = shipped_sector_mapping(raw)
    assert rows == len(expected) == mapping.groupby("DataCarteira")[SECTOR].nunique().sum()
    assert set(staged[SECTOR]) == set(mapping[SECTOR])  # canonical labels, not B3's text
    pd.testing.assert_frame_equal(staged, expected, check_exact=True)


@pytest.mark.slow
def test_spark_stages_one_folder_per_day_and_no_sector_path(refined_by_spark):
    store, days, prefix, _ = refined_by_spark
    folders = {info.key[len(prefix):].rsplit("/", 1)[0] for info in store.lake.list(prefix)
               if info.key.endswith(".parquet")}
    assert folders == {f"{DATE}={day.isoformat()}" for day in days}
    staged = read_staged_refined(store.lake, prefix)
    assert "Bens Industriais / Máquinas e Equipamentos" in set(staged[SECTOR]), \
        "a '/' in a sector is data, not a folder"


@pytest.mark.slow
def test_committed_spark_output_is_the_table_the_local_engine_gives(refined_by_spark, tmp_path, recorded_snapshots):
    store, days, prefix, _ = refined_by_spark
    raw = pd.concat([snapshot.rows for snapshot in recorded_snapshots], ignore_index=True)
    staging.write_expected(store.lake, prefix, expected_refined(raw, shipped_sector_mapping(raw)))
    spark_tables = open_tables(store.lake)
    staging.commit_staged(spark_tables, PORTFOLIO_TABLE_DEF, prefix, [day.isoformat() for day in days])
    local_tables = open_tables(LocalLake(tmp_path / "local"))
    local_tables.commit(PORTFOLIO_TABLE_DEF, pa.Table.from_pandas(refine_portfolio(raw, PROCESSING_DATE)),
                        [day.isoformat() for day in days])
    assert store.lake.list(prefix) == []  # staging removed
    assert spark_tables.scan(PORTFOLIO_TABLE_DEF).equals(local_tables.scan(PORTFOLIO_TABLE_DEF))


def test_job_arguments_carry_the_one_refine_sql():
    from b3_dagster.transforms.sector_refine import refine_sql

    lake = LocalLake("/tmp/unused-lake")
    arguments = refine_job_arguments(lake, [dt.date(2025, 4, 8), dt.date(2025, 4, 7)], PROCESSING_DATE,
                                     staging_prefix("t"))
    assert arguments["--refine_sql"] == refine_sql(PROCESSING_DATE, dialect="spark")
    assert arguments["--raw_paths"].split(",") == [lake.uri("raw/date=2025-04-07/"), lake.uri("raw/date=2025-04-08/")]
    assert arguments["--partition_columns"] == "Data"
    # the run's sector mapping, beside (not inside) the output folder that Spark overwrites
    assert arguments["--mapping_path"] == lake.uri("staging/ibov_sector_refined_inputs/t/sector_mapping.parquet")
    assert arguments["--mapping_view"] == "sector_mapping" and "JOIN sector_mapping" in arguments["--refine_sql"]
    parsed = refine_sectors.parse_arguments(_argv(arguments))
    assert parsed == {name[2:]: value for name, value in arguments.items()}
    with pytest.raises(refine_sectors.JobArgumentError, match="--refine_sql"):
        refine_sectors.parse_arguments(["--raw_paths", "x", "--source_view", "v", "--output_path", "o",
                                        "--partition_columns", "Data"])
