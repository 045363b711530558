"""The Glue (Spark) refine job, run with local PySpark 3.5 (Glue 5.0's Spark line): it gives exactly the rows of
the local DuckDB refine on the recorded days, in the same Hive layout and escaping, and once promoted the very
same refined objects."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from b3_dagster.glue_jobs import refine_sectors
from b3_dagster.model import DATE, SECTOR
from b3_dagster.storage.glue_job import (
    GlueRefineError,
    promote_staged_refined,
    read_staged_refined,
    refine_job_arguments,
    staging_prefix,
)
from b3_dagster.storage.lake import LocalLake
from b3_dagster.storage.layout import refined_sector_folder
from b3_dagster.storage.portfolio_store import PortfolioStore
from b3_dagster.transforms.sectors import refine_portfolio

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
    rows = refine_sectors.main(_argv(refine_job_arguments(lake, days, PROCESSING_DATE, prefix)), spark=spark)
    return store, days, prefix, rows


@pytest.mark.slow
def test_spark_job_rows_equal_the_local_refine_exactly(refined_by_spark, recorded_snapshots):
    store, days, prefix, rows = refined_by_spark
    raw = pd.concat([snapshot.rows for snapshot in recorded_snapshots], ignore_index=True)
    expected = refine_portfolio(raw, PROCESSING_DATE).sort_values([DATE, SECTOR]).reset_index(drop=True)

    staged = read_staged_refined(store.lake, prefix)

    assert rows == len(expected) == sum(s.rows["segment"].nunique() for s in recorded_snapshots)
    pd.testing.assert_frame_equal(staged, expected, check_exact=True)


@pytest.mark.slow
def test_spark_escapes_partition_folders_as_the_lake_layout_does(refined_by_spark):
    store, days, prefix, _ = refined_by_spark
    staged = read_staged_refined(store.lake, prefix)
    folders = {info.key[len(prefix):].rsplit("/", 1)[0] for info in store.lake.list(prefix)
               if info.key.endswith(".parquet")}
    expected = {f"{DATE}={day.isoformat()}/{refined_sector_folder(sector).rstrip('/')}"
                for day, sector in zip(staged[DATE], staged[SECTOR])}
    assert folders == expected
    assert "Data=2025-04-07/Setor=Bens Indls %2F Máqs e Equips" in folders  # a "/" in a sector stays one folder


@pytest.mark.slow
def test_promoted_spark_output_is_byte_identical_to_the_local_engines(refined_by_spark, tmp_path,
                                                                      recorded_snapshots):
    store, days, prefix, _ = refined_by_spark
    local = PortfolioStore(LocalLake(tmp_path / "local"))
    for snapshot in recorded_snapshots:
        local.write_refined(snapshot.portfolio_date, refine_portfolio(snapshot.rows, PROCESSING_DATE))

    written = promote_staged_refined(store, prefix, days)

    assert sorted(written) == days
    assert store.lake.list(prefix) == []  # staging removed
    refined_keys = [info.key for info in store.lake.list("refined/")]
    assert refined_keys == [info.key for info in local.lake.list("refined/")]
    for key in refined_keys:
        assert store.lake.read_bytes(key) == local.lake.read_bytes(key), key


def test_promotion_refuses_output_that_misses_a_requested_day(tmp_path):
    store = PortfolioStore(LocalLake(tmp_path))
    with pytest.raises(GlueRefineError, match=r"no rows for \['2025-04-07'\].*nothing was promoted"):
        promote_staged_refined(store, staging_prefix("empty"), [dt.date(2025, 4, 7)])
    assert store.lake.list() == []


def test_job_arguments_carry_the_one_refine_sql():
    from b3_dagster.transforms.sectors import refine_sql

    lake = LocalLake("/tmp/unused-lake")
    arguments = refine_job_arguments(lake, [dt.date(2025, 4, 8), dt.date(2025, 4, 7)], PROCESSING_DATE,
                                     staging_prefix("t"))
    assert arguments["--refine_sql"] == refine_sql(PROCESSING_DATE, dialect="spark")
    assert arguments["--raw_paths"].split(",") == [lake.uri("raw/date=2025-04-07/"), lake.uri("raw/date=2025-04-08/")]
    assert arguments["--partition_columns"] == "Data,Setor"
    parsed = refine_sectors.parse_arguments(_argv(arguments))
    assert parsed == {name[2:]: value for name, value in arguments.items()}
    with pytest.raises(refine_sectors.JobArgumentError, match="--refine_sql"):
        refine_sectors.parse_arguments(["--raw_paths", "x", "--source_view", "v", "--output_path", "o",
                                        "--partition_columns", "Data"])
