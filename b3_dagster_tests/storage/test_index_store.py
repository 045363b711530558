"""The index history in the lake (raw immutability, Hive month folders) and the ibov_refined table in DuckDB, where
seed 001's analytic query runs unchanged."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest

from b3_dagster.calendar import sessions

from b3_dagster.storage.catalog import DuckDBCatalog
from b3_dagster.storage.index_store import (
    SEED_001_QUERY,
    IndexStore,
    index_table_spec,
    RawPartitionConflict,
    publish_index_months,
    raw_index_key,
    refined_month_prefix,
    seed_001_query,
)
from b3_dagster.storage.lake import LocalLake
from b3_dagster.storage.layout import read_parquet_bytes
from b3_dagster.storage.portfolio_store import PortfolioStore
from b3_dagster.transforms.index_features import index_features
from b3_dagster_tests.transforms.test_index_features import bars


@pytest.fixture
def store(tmp_path) -> IndexStore:
    return IndexStore(LocalLake(tmp_path / "lake"))


def september_2025() -> pd.DataFrame:
    raw = bars()
    return raw[(raw["date"] >= dt.date(2025, 9, 1)) & (raw["date"] <= dt.date(2025, 9, 30))].reset_index(drop=True)


def test_raw_days_round_trip_and_land_under_their_own_prefix(store):
    september = september_2025()
    outcomes = store.write_raw(september, source="replay")
    assert [o.status for o in outcomes] == ["written"] * len(september)
    assert store.raw_days() == september["date"].tolist()
    assert raw_index_key(dt.date(2025, 9, 1)) == "raw/ibov_index/date=2025-09-01/bvsp_daily.parquet"
    pd.testing.assert_frame_equal(store.read_raw(store.raw_days()), september)
    # the portfolio's raw listing (raw/date=...) does not mistake index files for portfolio days
    assert PortfolioStore(store.lake).raw_days() == []


def test_the_same_bars_again_are_a_no_op(store):
    september = september_2025()
    store.write_raw(september)
    versions = {info.key: info.version for info in store.lake.list("raw/")}
    assert {o.status for o in store.write_raw(september)} == {"unchanged"}
    assert {info.key: info.version for info in store.lake.list("raw/")} == versions


def test_a_revised_bar_refuses_the_whole_batch_before_writing(store):
    """Yahoo revises recent bars (the 2021-12 revisions) and back-fills volumes: a different bar for a stored day is
    refused, and the new days of the same batch are not written either."""
    september = september_2025()
    store.write_raw(september.iloc[:10])
    revised = september.copy()
    revised.loc[5, "volume"] += 1000  # a back-filled volume
    with pytest.raises(RawPartitionConflict, match=str(revised.loc[5, "date"])):
        store.write_raw(revised)
    assert store.raw_days() == september["date"].tolist()[:10]
    assert store.read_raw([revised.loc[5, "date"]])["volume"].iloc[0] == september.loc[5, "volume"]


def test_allow_overwrite_replaces_and_archives(store):
    september = september_2025()
    store.write_raw(september)
    revised = september.copy()
    revised.loc[3, "close"] += 7
    outcomes = store.write_raw(revised, allow_overwrite=True, now=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    replaced = [o for o in outcomes if o.status == "replaced"]
    assert [o.key for o in replaced] == [raw_index_key(revised.loc[3, "date"])]
    archived = read_parquet_bytes(store.lake.read_bytes(replaced[0].archived_key)).to_pandas()
    assert archived["close"].iloc[0] == september.loc[3, "close"]
    assert store.read_raw([revised.loc[3, "date"]])["close"].iloc[0] == revised.loc[3, "close"]


def test_refined_months_are_hive_folders_that_duckdb_reads_back(store, tmp_path):
    refined = index_features(bars())
    for year, month in [(2025, 9), (2025, 10)]:
        rows = refined[(refined["year"] == year) & (refined["month"] == month)]
        keys = store.write_refined_month(year, month, rows)
        assert keys == [f"{refined_month_prefix(year, month)}part-0.parquet"]
        pd.testing.assert_frame_equal(store.read_refined_month(year, month), rows.reset_index(drop=True))
    assert refined_month_prefix(2025, 9) == "refined/ibov_index/year=2025/month=9/"
    pattern = str(store.lake.root / "refined" / "ibov_index" / "**" / "*.parquet")
    counts = duckdb.sql(f"SELECT year, month, count(*) FROM read_parquet('{pattern}', hive_partitioning=true) "
                        "GROUP BY ALL ORDER BY ALL").fetchall()
    assert counts == [(2025, 9, 22), (2025, 10, 23)]


def test_a_month_is_replaced_as_a_whole(store):
    refined = index_features(bars())
    october = refined[(refined["year"] == 2025) & (refined["month"] == 10)]
    store.write_refined_month(2025, 10, october.head(5))
    store.write_refined_month(2025, 10, october)
    assert len(store.read_refined_month(2025, 10)) == len(october)
    with pytest.raises(ValueError, match="2025-09"):
        store.write_refined_month(2025, 9, october)


def test_seed_001_query_runs_unchanged_on_the_published_table(store, tmp_path):
    """Seed 001's query, verbatim (year 2025, month 10), answers from ibov_refined with the refined values."""
    refined = index_features(bars())
    for year, month in [(2025, 9), (2025, 10), (2025, 11)]:
        store.write_refined_month(year, month, refined[(refined["year"] == year) & (refined["month"] == month)])
    catalog = DuckDBCatalog(tmp_path / "catalog.duckdb")
    published = publish_index_months(store, catalog, [(2025, 9), (2025, 10), (2025, 11)])
    months = [(2025, 9), (2025, 10), (2025, 11)]
    assert len(published) == sum(((refined["year"] == y) & (refined["month"] == m)).sum() for y, m in months)
    assert len(published) == len([d for d in sessions("2025-09-01", "2025-11-30") if d <= refined["data"].max()])

    answer = catalog.query(SEED_001_QUERY)
    october = refined[(refined["year"] == 2025) & (refined["month"] == 10)].sort_values("data", ascending=False)
    expected = october.head(10).reset_index(drop=True)
    assert [ts.date() for ts in pd.to_datetime(answer["data"])] == expected["data"].tolist()
    assert answer["preco_fechamento"].tolist() == expected["preco_fechamento"].tolist()
    assert answer["variacao_diaria"].tolist() == pytest.approx(expected["variacao_diaria"].tolist())
    assert answer["variacao_pct"].tolist() == pytest.approx(expected["variacao_pct"].tolist())
    assert answer["volume_negociado"].tolist() == expected["volume_negociado"].tolist()
    registered = {tuple(map(int, p.values)): p.location for p in catalog.partitions(index_table_spec())}
    assert registered == {(y, m): store.lake.uri(refined_month_prefix(y, m)) for y, m in [(2025, 9), (2025, 10),
                                                                                          (2025, 11)]}


def test_republishing_a_month_replaces_only_its_rows(store, tmp_path):
    refined = index_features(bars())
    for year, month in [(2025, 9), (2025, 10)]:
        store.write_refined_month(year, month, refined[(refined["year"] == year) & (refined["month"] == month)])
    catalog = DuckDBCatalog(tmp_path / "catalog.duckdb")
    publish_index_months(store, catalog, [(2025, 9), (2025, 10)])
    publish_index_months(store, catalog, [(2025, 10)])
    counts = catalog.query("SELECT month, count(*) AS n FROM b3_refined_db.ibov_refined GROUP BY month ORDER BY month")
    assert counts["n"].tolist() == [22, 23]


def test_seed_001_query_for_another_month_changes_only_the_filter():
    sql = seed_001_query(2026, 3)
    assert sql.replace("year = 2026 AND month = 3", "year = 2025 AND month = 10") == SEED_001_QUERY
