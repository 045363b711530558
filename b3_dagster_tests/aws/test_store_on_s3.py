"""The same PortfolioStore raw writes on LocalLake and on S3Lake (moto) give the same objects: same keys, same bytes,
same rows; and the raw layer's immutability holds on S3 too."""

from __future__ import annotations

import pytest

from b3_dagster.errors import RawPartitionConflict
from b3_dagster.storage.lake import LocalLake
from b3_dagster.storage.lakes import lake_from_uri
from b3_dagster.storage.layout import read_parquet_bytes
from b3_dagster.storage.portfolio_store import PortfolioStore


def _fill(store: PortfolioStore, snapshots) -> None:
    for snapshot in snapshots:
        store.write_raw(snapshot)


def test_same_writes_give_the_same_objects_locally_and_on_s3(tmp_path, bucket, aws_env, recorded_snapshots):
    local = PortfolioStore(LocalLake(tmp_path / "lake"))
    remote = PortfolioStore(lake_from_uri(f"s3://{bucket}/lake", endpoint_url=aws_env))
    _fill(local, recorded_snapshots)
    _fill(remote, recorded_snapshots)

    local_keys = [info.key for info in local.lake.list()]
    assert [info.key for info in remote.lake.list()] == local_keys
    assert len(local_keys) == len(recorded_snapshots)  # one raw file per day
    for key in local_keys:
        local_bytes, remote_bytes = local.lake.read_bytes(key), remote.lake.read_bytes(key)
        assert read_parquet_bytes(remote_bytes).equals(read_parquet_bytes(local_bytes)), key
        assert remote_bytes == local_bytes, key
    for snapshot in recorded_snapshots:
        day = snapshot.portfolio_date
        assert remote.read_raw(day).rows.equals(local.read_raw(day).rows)
    assert remote.raw_days() == local.raw_days() == [s.portfolio_date for s in recorded_snapshots]


def test_raw_on_s3_is_never_silently_replaced(bucket, aws_env, recorded_snapshots):
    store = PortfolioStore(lake_from_uri(f"s3://{bucket}/lake", endpoint_url=aws_env))
    snapshot = recorded_snapshots[-1]
    assert store.write_raw(snapshot).status == "written"
    assert store.write_raw(snapshot).status == "unchanged"
    before = store.lake.list()
    original_bytes = store.lake.read_bytes(before[0].key)
    changed_rows = snapshot.rows.copy()
    changed_rows.loc[0, "part"] += 0.001
    changed = type(snapshot)(portfolio_date=snapshot.portfolio_date, rows=changed_rows, reductor=snapshot.reductor,
                             theoretical_qty_total=snapshot.theoretical_qty_total, source=snapshot.source)
    with pytest.raises(RawPartitionConflict, match=f"s3://{bucket}/lake/raw/date="):
        store.write_raw(changed)
    assert store.lake.list() == before
    outcome = store.write_raw(changed, allow_overwrite=True)
    assert outcome.status == "replaced" and outcome.archived_key.startswith("archive/raw/date=")
    assert store.lake.read_bytes(outcome.archived_key) == original_bytes
    assert store.read_raw(snapshot.portfolio_date).rows["part"].iloc[0] == changed_rows["part"].iloc[0]
