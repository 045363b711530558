"""The one raw-write protocol (compare -> refuse -> archive -> write) that every store uses."""

import datetime as dt

import pytest

from b3_dagster.storage.lake import LocalLake
from b3_dagster.storage.raw_writes import RawPartition, write_raw_partitions

STAMP = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.timezone.utc)


class Refused(Exception):
    pass


def _partition(lake, key: str, data: bytes, stored=None) -> RawPartition:
    return RawPartition(key, data, 1, key, stored=stored or (lambda: [key] if lake.exists(key) else []),
                        compare=lambda: None if lake.read_bytes(key) == data else "different bytes")


def _refuse(conflicts):
    return Refused([partition.key for partition, _ in conflicts])


@pytest.fixture
def lake(tmp_path) -> LocalLake:
    return LocalLake(tmp_path / "lake")


def test_new_same_and_replaced_partitions(lake):
    lake.write_bytes("raw/b", b"old")
    lake.write_bytes("raw/c", b"same")
    outcomes = write_raw_partitions(lake, [_partition(lake, "raw/a", b"new"), _partition(lake, "raw/b", b"newer"),
                                           _partition(lake, "raw/c", b"same")],
                                    allow_overwrite=True, refuse=_refuse, now=STAMP)
    assert [o.status for o in outcomes] == ["written", "replaced", "unchanged"]
    assert lake.read_bytes("raw/b") == b"newer"
    assert lake.read_bytes(outcomes[1].archived_key) == b"old"  # archived before it was replaced
    assert outcomes[1].archived_key.startswith("archive/raw/")


def test_one_conflict_refuses_the_whole_batch_before_any_write(lake):
    lake.write_bytes("raw/b", b"old")
    with pytest.raises(Refused) as refused:
        write_raw_partitions(lake, [_partition(lake, "raw/a", b"new"), _partition(lake, "raw/b", b"newer")],
                             allow_overwrite=False, refuse=_refuse, now=STAMP)
    assert refused.value.args[0] == ["raw/b"]
    assert not lake.exists("raw/a")  # the new partition of the batch was not written either
    assert lake.read_bytes("raw/b") == b"old"
    assert not lake.list("archive/")


def test_replacing_archives_every_stored_object_and_keeps_one(lake):
    lake.write_bytes("raw/day/old-name.parquet", b"first")
    lake.write_bytes("raw/day/data.parquet", b"second")
    partition = RawPartition("raw/day/data.parquet", b"third", 1, "day",
                             stored=lambda: sorted(info.key for info in lake.list("raw/day/")),
                             compare=lambda: "different")
    [outcome] = write_raw_partitions(lake, [partition], allow_overwrite=True, refuse=_refuse, now=STAMP)
    assert outcome.status == "replaced"
    assert [info.key for info in lake.list("raw/")] == ["raw/day/data.parquet"]
    assert sorted(lake.read_bytes(info.key) for info in lake.list("archive/")) == [b"first", b"second"]


@pytest.mark.parametrize("racer_wrote, allow, expected", [(b"mine", False, "unchanged"),
                                                          (b"theirs", False, Refused),
                                                          (b"theirs", True, "replaced")])
def test_a_writer_that_got_there_first_is_compared_with(lake, racer_wrote, allow, expected):
    calls = []

    def stored():  # empty when planned; meanwhile another writer creates the object
        calls.append(1)
        if len(calls) == 1:
            lake.write_bytes("raw/a", racer_wrote)
            return []
        return ["raw/a"]

    partition = _partition(lake, "raw/a", b"mine", stored=stored)
    if expected is Refused:
        with pytest.raises(Refused):
            write_raw_partitions(lake, [partition], allow_overwrite=allow, refuse=_refuse, now=STAMP)
        assert lake.read_bytes("raw/a") == b"theirs"  # never overwritten without leave
        return
    [outcome] = write_raw_partitions(lake, [partition], allow_overwrite=allow, refuse=_refuse, now=STAMP)
    assert outcome.status == expected
    assert lake.read_bytes("raw/a") == b"mine"


def test_refusing_needs_a_refusal(lake):
    with pytest.raises(ValueError, match="refuse"):
        write_raw_partitions(lake, [_partition(lake, "raw/a", b"x")], allow_overwrite=False)
