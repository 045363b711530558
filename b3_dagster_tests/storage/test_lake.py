import os

import pytest

from b3_dagster.storage.lake import TEMP_PREFIX, LocalLake


@pytest.fixture
def lake(lake_root):
    return LocalLake(lake_root)


def test_write_read_list_delete(lake):
    lake.write_bytes("raw/date=2025-04-07/a.parquet", b"one")
    lake.write_bytes("raw/date=2025-04-08/b.parquet", b"two")
    assert lake.read_bytes("raw/date=2025-04-07/a.parquet") == b"one"
    assert [info.key for info in lake.list("raw/")] == ["raw/date=2025-04-07/a.parquet", "raw/date=2025-04-08/b.parquet"]
    assert [info.key for info in lake.list("raw/date=2025-04-08")] == ["raw/date=2025-04-08/b.parquet"]
    lake.delete(["raw/date=2025-04-07/a.parquet"])
    assert not lake.exists("raw/date=2025-04-07/a.parquet")
    assert not (lake.root / "raw/date=2025-04-07").exists(), "empty folders are removed"


def test_version_changes_when_content_changes(lake):
    lake.write_bytes("x/f", b"one")
    before = lake.list("x/")[0].version
    lake.write_bytes("x/f", b"longer content")
    assert lake.list("x/")[0].version != before


@pytest.mark.parametrize("key", ["../escape", "/abs", "a//b", "a/./b", ""])
def test_keys_cannot_escape_the_root(lake, key):
    with pytest.raises(ValueError):
        lake.write_bytes(key, b"x")


def test_a_failed_write_leaves_the_old_file_whole(lake, monkeypatch):
    lake.write_bytes("raw/f", b"old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        lake.write_bytes("raw/f", b"new")
    monkeypatch.undo()
    assert lake.read_bytes("raw/f") == b"old"
    assert not [p for p in (lake.root / "raw").iterdir() if p.name.startswith(TEMP_PREFIX)], "temp file left behind"


def test_temporary_files_are_never_listed(lake):
    lake.write_bytes("raw/date=2025-04-07/a.parquet", b"x")
    (lake.root / "raw/date=2025-04-07" / f"{TEMP_PREFIX}half-written").write_bytes(b"partial")
    assert [info.key for info in lake.list("raw/")] == ["raw/date=2025-04-07/a.parquet"]


def test_replace_prefix_swaps_a_whole_folder_and_touches_nothing_else(lake):
    lake.write_bytes("refined/Data=2025-04-07/Setor=A/part-0.parquet", b"a")
    lake.write_bytes("refined/Data=2025-04-07/Setor=B/part-0.parquet", b"b")
    lake.write_bytes("refined/Data=2025-04-08/Setor=A/part-0.parquet", b"other day")

    written = lake.replace_prefix("refined/Data=2025-04-07/", {"Setor=A/part-0.parquet": b"a2",
                                                               "Setor=C/part-0.parquet": b"c"})
    assert written == ["refined/Data=2025-04-07/Setor=A/part-0.parquet", "refined/Data=2025-04-07/Setor=C/part-0.parquet"]
    assert [info.key for info in lake.list("refined/Data=2025-04-07/")] == written
    assert lake.read_bytes("refined/Data=2025-04-07/Setor=A/part-0.parquet") == b"a2"
    assert lake.read_bytes("refined/Data=2025-04-08/Setor=A/part-0.parquet") == b"other day"
    assert not [p for p in (lake.root / "refined").iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_replace_prefix_restores_the_old_folder_when_the_swap_fails(lake, monkeypatch):
    lake.write_bytes("refined/Data=2025-04-07/Setor=A/part-0.parquet", b"a")
    real_replace = os.replace
    calls = []

    def fail_second(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # the old folder was moved aside; the new one fails to move in
            raise OSError("interrupted")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", fail_second)
    with pytest.raises(OSError):
        lake.replace_prefix("refined/Data=2025-04-07/", {"Setor=B/part-0.parquet": b"b"})
    monkeypatch.undo()
    assert [info.key for info in lake.list("refined/")] == ["refined/Data=2025-04-07/Setor=A/part-0.parquet"]


def test_write_new_creates_only_once(lake):
    assert lake.write_new("raw/date=2025-04-07/f.parquet", b"first") is True
    assert lake.write_new("raw/date=2025-04-07/f.parquet", b"second") is False
    assert lake.read_bytes("raw/date=2025-04-07/f.parquet") == b"first"
    assert [info.key for info in lake.list("raw/")] == ["raw/date=2025-04-07/f.parquet"], "no temp file left"


def test_a_file_another_process_removes_during_a_listing_is_left_out_not_an_error(lake, monkeypatch):
    # the demo's two processes list and replace files under raw/ at the same time: a file the walk saw can be gone
    # (archived, replaced) before its size is read
    lake.write_bytes("raw/a/kept.parquet", b"1")
    lake.write_bytes("raw/b/moved.parquet", b"2")
    walk = os.walk

    def walk_then_the_other_process_moves_a_file(top, *args, **kwargs):
        for entry in walk(top, *args, **kwargs):
            if entry[0].endswith("b"):  # listed by the walk, removed before its size is read
                os.remove(os.path.join(entry[0], "moved.parquet"))
            yield entry

    monkeypatch.setattr(os, "walk", walk_then_the_other_process_moves_a_file)
    assert [info.key for info in lake.list("raw/")] == ["raw/a/kept.parquet"]
