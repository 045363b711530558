"""The index history's raw layer in the lake (raw immutability); the Iceberg table ibov_refined is tested in
test_tables.py."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest


from b3_dagster.errors import RawPartitionConflict
from b3_dagster.storage.bar_store import (
    SEED_001_QUERY,
    BarStore,
    seed_001_query,
)
from b3_dagster.storage.lake import LocalLake
from b3_dagster.storage.layout import raw_index_key, read_parquet_bytes
from b3_dagster.storage.portfolio_store import PortfolioStore
from b3_dagster_tests.helpers import bars


@pytest.fixture
def store(tmp_path) -> BarStore:
    return BarStore(LocalLake(tmp_path / "lake"))


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


def test_seed_001_query_for_another_month_changes_only_the_filter():
    sql = seed_001_query(2026, 3)
    assert sql.replace("year = 2026 AND month = 3", "year = 2025 AND month = 10") == SEED_001_QUERY
