"""S3Lake against moto in server mode: the Lake contract, pagination, batching, and partition replacement."""

from __future__ import annotations

import pytest

import b3_dagster.storage.s3_lake as s3_lake_module
from b3_dagster.storage.lakes import lake_from_uri
from b3_dagster.storage.s3_lake import S3Lake, split_s3_uri


@pytest.fixture
def lake(bucket, aws_env):
    return lake_from_uri(f"s3://{bucket}/lake", endpoint_url=aws_env, region_name="us-east-1")


def test_lake_from_uri_builds_an_s3_lake_rooted_at_the_prefix(lake, bucket):
    assert isinstance(lake, S3Lake)
    assert (lake.bucket, lake.prefix) == (bucket, "lake/")
    assert lake.uri("raw/date=2025-04-07/ibov_setor.parquet") == f"s3://{bucket}/lake/raw/date=2025-04-07/ibov_setor.parquet"
    assert lake.root_uri == f"s3://{bucket}/lake"


@pytest.mark.parametrize("uri, expected", [("s3://b", ("b", "")), ("s3://b/", ("b", "")),
                                           ("s3://b/x/y/", ("b", "x/y/")), ("s3://b/x", ("b", "x/"))])
def test_split_s3_uri(uri, expected):
    assert split_s3_uri(uri) == expected


@pytest.mark.parametrize("uri", ["/tmp/lake", "s3://", "s3:///prefix", "s3://b/../x"])
def test_split_s3_uri_refuses_what_is_not_a_bucket_uri(uri):
    with pytest.raises(ValueError):
        split_s3_uri(uri)


def test_write_read_exists_and_list_relative_to_the_root(lake, s3, bucket):
    s3.put_object(Bucket=bucket, Key="outside/raw/x.parquet", Body=b"not ours")
    s3.put_object(Bucket=bucket, Key="lake/refined/", Body=b"")  # a console-made folder marker
    lake.write_bytes("raw/date=2025-04-07/ibov_setor.parquet", b"one")
    lake.write_bytes("raw/date=2025-04-08/ibov_setor.parquet", b"two!")

    assert lake.read_bytes("raw/date=2025-04-08/ibov_setor.parquet") == b"two!"
    assert lake.exists("raw/date=2025-04-07/ibov_setor.parquet")
    assert not lake.exists("raw/date=2025-04-09/ibov_setor.parquet")
    listed = lake.list()
    assert [info.key for info in listed] == ["raw/date=2025-04-07/ibov_setor.parquet",
                                            "raw/date=2025-04-08/ibov_setor.parquet"]
    assert [info.size for info in listed] == [3, 4]
    head = s3.head_object(Bucket=bucket, Key="lake/raw/date=2025-04-07/ibov_setor.parquet")
    assert listed[0].version == head["ETag"].strip('"')
    assert [info.key for info in lake.list("raw/date=2025-04-0")] == [info.key for info in listed]
    assert [info.key for info in lake.list("raw/date=2025-04-08/")] == ["raw/date=2025-04-08/ibov_setor.parquet"]


def test_version_changes_when_the_content_changes(lake):
    lake.write_bytes("a/b.bin", b"first")
    before = lake.list("a/")[0].version
    lake.write_bytes("a/b.bin", b"second")
    assert lake.list("a/")[0].version != before
    assert lake.read_bytes("a/b.bin") == b"second"


def test_missing_object_and_invalid_keys(lake):
    with pytest.raises(FileNotFoundError, match="raw/nothing"):
        lake.read_bytes("raw/nothing")
    for key in ["", "/abs", "a//b", "a/../b"]:
        with pytest.raises(ValueError):
            lake.write_bytes(key, b"x")


def test_list_follows_pagination(lake, monkeypatch):
    keys = [f"many/{number:02d}.bin" for number in range(7)]
    for key in keys:
        lake.write_bytes(key, key.encode())
    monkeypatch.setattr(s3_lake_module, "LIST_PAGE_SIZE", 2)
    pages = []
    lake.client.meta.events.register("after-call.s3.ListObjectsV2", lambda **kwargs: pages.append(1))
    assert [info.key for info in lake.list("many/")] == keys
    assert len(pages) == 4  # 7 keys, 2 per page


def test_delete_in_batches_and_only_the_named_keys(lake, monkeypatch):
    for number in range(5):
        lake.write_bytes(f"d/{number}.bin", b"x")
    monkeypatch.setattr(s3_lake_module, "DELETE_BATCH", 2)
    calls = []
    lake.client.meta.events.register("before-call.s3.DeleteObjects", lambda **kwargs: calls.append(1))
    lake.delete(["d/0.bin", "d/1.bin", "d/2.bin", "d/4.bin"])
    assert [info.key for info in lake.list("d/")] == ["d/3.bin"]
    assert len(calls) == 2


def test_replace_prefix_puts_new_objects_before_deleting_stale_ones(lake, s3, bucket):
    day = "refined/Data=2025-04-07/"
    lake.write_bytes(day + "Setor=A/part-0.parquet", b"old A")
    lake.write_bytes(day + "Setor=Gone/part-0.parquet", b"old gone")
    lake.write_bytes("refined/Data=2025-04-07x/Setor=A/part-0.parquet", b"neighbour")  # shares the text prefix
    lake.write_bytes("refined/Data=2025-04-08/Setor=Gone/part-0.parquet", b"other day")
    s3.put_object(Bucket=bucket, Key="elsewhere/refined/Data=2025-04-07/Setor=Gone/part-0.parquet", Body=b"x")

    operations = []
    lake.client.meta.events.register("before-parameter-build.s3.PutObject",
                                     lambda params, **kwargs: operations.append(("put", params["Key"])))
    lake.client.meta.events.register("before-parameter-build.s3.DeleteObjects", lambda params, **kwargs: operations.append(
        ("delete", tuple(item["Key"] for item in params["Delete"]["Objects"]))))

    written = lake.replace_prefix(day.rstrip("/"), {"Setor=A/part-0.parquet": b"new A",
                                                    "Setor=B/part-0.parquet": b"new B"})

    assert written == [day + "Setor=A/part-0.parquet", day + "Setor=B/part-0.parquet"]
    assert [kind for kind, _ in operations] == ["put", "put", "delete"]
    assert operations[-1][1] == ("lake/" + day + "Setor=Gone/part-0.parquet",)
    assert {info.key: lake.read_bytes(info.key) for info in lake.list("refined/")} == {
        day + "Setor=A/part-0.parquet": b"new A",
        day + "Setor=B/part-0.parquet": b"new B",
        "refined/Data=2025-04-07x/Setor=A/part-0.parquet": b"neighbour",
        "refined/Data=2025-04-08/Setor=Gone/part-0.parquet": b"other day",
    }
    assert s3.get_object(Bucket=bucket, Key="elsewhere/refined/Data=2025-04-07/Setor=Gone/part-0.parquet")


def test_replace_prefix_with_nothing_empties_only_that_prefix(lake):
    lake.write_bytes("p/q/1.bin", b"1")
    lake.write_bytes("p/r/1.bin", b"1")
    assert lake.replace_prefix("p/q/", {}) == []
    assert [info.key for info in lake.list()] == ["p/r/1.bin"]


@pytest.mark.parametrize("prefix", ["", "/", "a/../b"])
def test_replace_prefix_refuses_a_prefix_that_is_not_a_folder_of_the_lake(lake, prefix):
    lake.write_bytes("keep/1.bin", b"1")
    with pytest.raises(ValueError):
        lake.replace_prefix(prefix, {"x.bin": b"x"})
    assert [info.key for info in lake.list()] == ["keep/1.bin"]


def test_write_new_is_a_conditional_put(lake):
    assert lake.write_new("raw/date=2025-04-07/f.parquet", b"first") is True
    assert lake.write_new("raw/date=2025-04-07/f.parquet", b"second") is False
    assert lake.read_bytes("raw/date=2025-04-07/f.parquet") == b"first"
