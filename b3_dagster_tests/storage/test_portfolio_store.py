"""Raw is the system of record: never silently replaced. Refined is one file per sector, swapped whole."""

import datetime as dt

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from b3_dagster.errors import RawPartitionConflict, RawPartitionMissing, UnreadableObject
from b3_dagster.model import RAW_COLUMNS, PortfolioSnapshot
from b3_dagster.storage.lake import LocalLake
from b3_dagster.storage.layout import raw_key
from b3_dagster.storage.portfolio_store import (
    PortfolioStore,
)
from b3_dagster_tests.helpers import snapshot_of


@pytest.fixture
def store(lake_root):
    return PortfolioStore(LocalLake(lake_root))


@pytest.fixture
def snapshot(recordings):
    return snapshot_of(recordings["2025-04-07"])


def test_raw_round_trip_keeps_rows_and_header(store, snapshot):
    outcome = store.write_raw(snapshot)
    assert outcome.status == "written"
    assert outcome.key == "raw/date=2025-04-07/ibov_setor.parquet"
    stored = store.read_raw(snapshot.portfolio_date)
    pd.testing.assert_frame_equal(stored.rows, snapshot.rows, check_dtype=False)
    assert (stored.reductor, stored.theoretical_qty_total) == (snapshot.reductor, snapshot.theoretical_qty_total)
    assert pq.read_metadata(store.lake.path(outcome.key)).row_group(0).column(0).compression == "SNAPPY"
    assert store.raw_days() == [snapshot.portfolio_date]


def test_identical_data_is_a_no_op(store, snapshot):
    store.write_raw(snapshot)
    before = store.lake.list("raw/")
    assert store.write_raw(snapshot).status == "unchanged"
    assert store.lake.list("raw/") == before, "the file must not even be rewritten"


def _changed(snapshot, **changes):
    rows = snapshot.rows.copy()
    for column, value in changes.items():
        rows.loc[0, column] = value
    return PortfolioSnapshot(snapshot.portfolio_date, rows, snapshot.reductor, snapshot.theoretical_qty_total)


def test_different_data_is_refused_and_the_stored_partition_kept(store, snapshot):
    store.write_raw(snapshot)
    original = store.lake.read_bytes(raw_key(snapshot.portfolio_date))
    with pytest.raises(RawPartitionConflict, match="already exists .* different data.*allow_overwrite"):
        store.write_raw(_changed(snapshot, part=9.999))
    assert store.lake.read_bytes(raw_key(snapshot.portfolio_date)) == original


def test_allowed_overwrite_archives_the_previous_file(store, snapshot):
    store.write_raw(snapshot)
    original = store.lake.read_bytes(raw_key(snapshot.portfolio_date))
    changed = _changed(snapshot, part=9.999)
    outcome = store.write_raw(changed, allow_overwrite=True, now=dt.datetime(2025, 4, 8, 12, tzinfo=dt.timezone.utc))
    assert outcome.status == "replaced"
    assert outcome.archived_key.startswith("archive/raw/date=2025-04-07/20250408T12")
    assert store.lake.read_bytes(outcome.archived_key) == original
    assert store.read_raw(snapshot.portfolio_date).rows.loc[0, "part"] == 9.999


def test_a_half_written_raw_file_is_reported_not_read(store, snapshot):
    store.write_raw(snapshot)
    path = store.lake.path(raw_key(snapshot.portfolio_date))
    path.write_bytes(path.read_bytes()[:500])  # an interrupted upload from outside
    with pytest.raises(UnreadableObject, match="half-written or corrupt"):
        store.read_raw(snapshot.portfolio_date)
    with pytest.raises(RawPartitionConflict, match="unreadable"):
        store.write_raw(snapshot)


def test_a_file_dropped_by_the_seed_lambda_is_read(store, snapshot):
    """Seed 000's Lambda wrote the same columns with theoricalQty as float and no header metadata."""
    rows = snapshot.rows.copy()
    rows["theoricalQty"] = rows["theoricalQty"].astype(float)
    store.lake.write_bytes("raw/date=2025-04-07/ibov_setor.parquet",
                           _parquet(pa.Table.from_pandas(rows[RAW_COLUMNS], preserve_index=False)))
    stored = store.read_raw(snapshot.portfolio_date)
    assert stored.rows["theoricalQty"].tolist() == snapshot.rows["theoricalQty"].tolist()
    assert stored.reductor is None


def test_a_file_with_another_schema_is_refused_with_its_columns(store, snapshot):
    renamed = snapshot.rows.rename(columns={"part": "weight"})
    store.lake.write_bytes("raw/date=2025-04-07/other.parquet", _parquet(pa.Table.from_pandas(renamed)))
    with pytest.raises(UnreadableObject, match=r"lacks raw columns \['part'\]"):
        store.read_raw(snapshot.portfolio_date)


def test_a_partition_holding_another_day_is_refused(store, snapshot):
    store.lake.write_bytes("raw/date=2025-04-08/ibov_setor.parquet", _parquet(snapshot.to_arrow()))
    with pytest.raises(UnreadableObject, match="holds the portfolio of 2025-04-07"):
        store.read_raw(dt.date(2025, 4, 8))


def test_missing_partition(store):
    with pytest.raises(RawPartitionMissing, match="2025-04-07"):
        store.read_raw(dt.date(2025, 4, 7))


def _parquet(table: pa.Table) -> bytes:
    from b3_dagster.storage.layout import parquet_bytes

    return parquet_bytes(table)


def test_a_writer_that_loses_the_race_compares_instead_of_overwriting(store, snapshot, monkeypatch):
    """Two writers see the partition absent; the second one's create fails and it falls back to the comparison."""
    other = _changed(snapshot, part=9.999)
    real_raw_keys = store.raw_keys
    calls = []

    def stale_listing(day):  # the first listing misses the other writer's file
        calls.append(day)
        return [] if len(calls) == 1 else real_raw_keys(day)

    store.write_raw(snapshot)
    monkeypatch.setattr(store, "raw_keys", stale_listing)
    with pytest.raises(RawPartitionConflict):
        store.write_raw(other)
    assert store.read_raw(snapshot.portfolio_date).rows["part"].tolist() == snapshot.rows["part"].tolist()
