"""The Dagster instance of a command's own process (b3_dagster/defs/shared/instance.py): Dagster's local instance
from DAGSTER_HOME, minus costs of its SQLite storage, writing what Dagster writes to the same files; `dg dev` and the daemon keep
Dagster's own classes."""

import logging
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import closing
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.events import AssetCheckEvaluationPlanned, DagsterEvent, DagsterEventType
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager
from dagster._core.storage.noop_compute_log_manager import NoOpComputeLogManager

from b3_dagster import cli
from b3_dagster.defs.shared.instance import OneProcessSqliteEventLogStorage, command_instance

SESSIONS = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-03-01")
CHECK_ROWS = ("SELECT asset_key, check_name, partition, run_id, execution_status, evaluation_event, "
              "evaluation_event_timestamp, evaluation_event_storage_id FROM asset_check_executions ORDER BY id")


def planned_check(run_id: str, keys: list[str], check_name: str = "table_answers_query") -> EventLogEntry:
    """What a run logs for each of its checks before it starts (run_domain._log_asset_planned_events): with the
    partitions of its range, or none for an unpartitioned run (``keys`` empty)."""
    return EventLogEntry(
        error_info=None, level=logging.DEBUG, user_message="", run_id=run_id, timestamp=1_767_000_000.0,
        dagster_event=DagsterEvent(
            event_type_value=DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED.value, job_name="ibov_refine_job",
            event_specific_data=AssetCheckEvaluationPlanned(
                asset_key=dg.AssetKey("tb_ibov_refined"), check_name=check_name,
                partitions_subset=SESSIONS.subset_with_partition_keys(keys).to_serializable_subset() if keys
                else None)))


@pytest.mark.parametrize("keys", [SESSIONS.get_partition_keys()[:40], []], ids=["a range", "no partition"])
def test_a_planned_check_writes_the_rows_dagster_writes(tmp_path, keys):
    dagsters, ours = SqliteEventLogStorage(str(tmp_path / "dagster")), \
        OneProcessSqliteEventLogStorage(str(tmp_path / "ours"))
    event = planned_check("run-1", keys)
    for storage in (dagsters, ours):
        storage.store_event(event)
        storage.dispose()
    rows = [sqlite3.connect(tmp_path / name / "index.db").execute(CHECK_ROWS).fetchall()
            for name in ("dagster", "ours")]
    assert rows[0] == rows[1], "the same rows, byte for byte"
    assert [row[2] for row in rows[1]] == (keys or [None]), "one row per planned partition, as Dagster"


def schema_of(path: Path) -> tuple:
    """A SQLite file's tables and indexes as created, its alembic stamp and its journal mode."""
    with closing(sqlite3.connect(path)) as connection:
        return (sorted(connection.execute("SELECT type, name, sql FROM sqlite_master").fetchall(),
                       key=lambda row: (row[0], row[1])),
                connection.execute("SELECT version_num FROM alembic_version").fetchall(),
                connection.execute("PRAGMA journal_mode").fetchone())


def test_a_runs_new_file_is_a_copy_of_what_dagster_makes_and_never_replaces_another_processes(tmp_path):
    dagsters, ours = SqliteEventLogStorage(str(tmp_path / "dagster")), \
        OneProcessSqliteEventLogStorage(str(tmp_path / "ours"))
    schema_made = []
    ours._initdb = lambda engine, **kwargs: schema_made.append(engine.url.database) or \
        SqliteEventLogStorage._initdb(ours, engine, **kwargs)
    umask = os.umask(0o002)  # a group-writable umask: SQLite still makes its files 0644, and so must the copy
    try:
        for storage in (dagsters, ours):
            for run_id in ("run-1", "run-2"):  # the first made by Dagster's _initdb (a scratch file), the second a copy
                storage.store_event(planned_check(run_id, []))
    finally:
        os.umask(umask)
    assert len(schema_made) == 1 and schema_made[0].endswith("empty.db"), "one schema made, in a scratch file"
    ours.dispose()
    dagsters.dispose()
    assert sorted(p.name for p in (tmp_path / "ours").iterdir()) == ["index.db", "run-1.db", "run-2.db"]
    made = schema_of(tmp_path / "dagster" / "run-2.db")
    assert made[1] and made[2] == ("wal",), made
    assert schema_of(tmp_path / "ours" / "run-1.db") == schema_of(tmp_path / "ours" / "run-2.db") == made
    modes = {stat.S_IMODE((tmp_path / name / "run-2.db").stat().st_mode) for name in ("dagster", "ours")}
    assert modes == {0o644}, [oct(mode) for mode in modes]

    # a run's file that another process made first is kept, and written to
    another = OneProcessSqliteEventLogStorage(str(tmp_path / "ours"))
    with closing(sqlite3.connect(tmp_path / "ours" / "run-3.db")) as other_process:
        other_process.execute("CREATE TABLE kept (x)")
    another.store_event(planned_check("run-3", []))
    another.dispose()
    with closing(sqlite3.connect(tmp_path / "ours" / "run-3.db")) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"kept", "event_logs"} <= tables
        assert connection.execute("SELECT COUNT(*) FROM event_logs").fetchone() == (1,)


def test_two_storages_of_one_process_make_the_same_runs_files_at_once_and_lose_no_event(tmp_path, monkeypatch):
    # each copy is put in place from a file of its own: two storage objects (each with its own lock) on one folder,
    # in two threads, make the same 60 runs' files at the same moment, each link slowed so that the other thread
    # writes its copy meanwhile. No copy is linked from a file another call may be writing, and every event lands.
    link, linked_from = os.link, []

    def slow_link(source, target):
        linked_from.append(source)
        time.sleep(0.002)
        link(source, target)

    monkeypatch.setattr(os, "link", slow_link)
    storages = [OneProcessSqliteEventLogStorage(str(tmp_path / "runs")) for _ in range(2)]
    run_ids = [f"run-{n}" for n in range(60)]
    errors = []
    together = threading.Barrier(2, timeout=60)  # both make each run's file at the same moment

    def store_all(storage):
        try:
            for run_id in run_ids:
                together.wait()
                storage.store_event(planned_check(run_id, []))
        except Exception as error:  # reported below, by the test's own thread
            errors.append(error)

    threads = [threading.Thread(target=store_all, args=(storage,)) for storage in storages]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for storage in storages:
        storage.dispose()
    assert errors == []
    assert len(linked_from) > len(run_ids) and len(set(linked_from)) == len(linked_from), "each call's own file"
    for run_id in run_ids:
        with closing(sqlite3.connect(tmp_path / "runs" / f"{run_id}.db")) as connection:
            assert connection.execute("SELECT COUNT(*) FROM event_logs").fetchone() == (2,), run_id
    assert not list((tmp_path / "runs").glob("*.tmp"))


def test_a_command_runs_on_dagsters_files_and_dg_dev_keeps_dagsters_classes(tmp_path, monkeypatch):
    """Its runs print nothing, so no compute logs (four helper processes per run, files that stay empty); its event
    log is this package's class on Dagster's files, and what it writes is what `dg dev` (DagsterInstance.get())
    reads."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")  # as the demo writes it
    monkeypatch.setenv("DAGSTER_HOME", str(home))

    @dg.asset(partitions_def=SESSIONS, check_specs=[dg.AssetCheckSpec("positive", asset="printed")])
    def printed(context: dg.AssetExecutionContext):
        print("a line on stdout")
        yield dg.MaterializeResult(check_results=[dg.AssetCheckResult(passed=len(context.partition_keys) == 5)])

    with cli._instance() as instance:  # the instance of every run the command makes
        assert isinstance(instance.compute_log_manager, NoOpComputeLogManager)
        assert type(instance.event_log_storage) is OneProcessSqliteEventLogStorage
        assert dg.materialize([printed], instance=instance, tags={
            "dagster/asset_partition_range_start": "2026-01-05", "dagster/asset_partition_range_end": "2026-01-09",
        }).success
    assert not list(home.rglob("compute_logs")), "no files mirrored from stdout/stderr, so no helper processes"
    assert (home / "history" / "runs" / "index.db").exists(), "Dagster's own layout under DAGSTER_HOME"
    with dg.DagsterInstance.get() as instance:  # what dg dev and the daemon load
        assert isinstance(instance.compute_log_manager, LocalComputeLogManager)
        assert type(instance.event_log_storage) is SqliteEventLogStorage
        [run] = instance.get_runs()
        assert run.is_success
        materialised = instance.get_materialized_partitions(dg.AssetKey("printed"))
        assert sorted(materialised) == ["2026-01-05", "2026-01-06", "2026-01-07", "2026-01-08", "2026-01-09"]
        check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey("printed"), "positive")])
        assert check[dg.AssetCheckKey(dg.AssetKey("printed"), "positive")].run_id == run.run_id


@pytest.mark.parametrize("folder", ["elsewhere", "home"])
def test_a_storage_named_in_dagster_yaml_is_kept(tmp_path, folder):
    """Even one naming DAGSTER_HOME's own folder: Dagster refuses the three storages of command_instance beside it."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(f"storage:\n  sqlite:\n    base_dir: {tmp_path / folder}\n")
    with command_instance(str(home)) as instance:
        assert type(instance.event_log_storage) is SqliteEventLogStorage
        assert isinstance(instance.compute_log_manager, NoOpComputeLogManager)
        assert dg.materialize([_an_asset()], instance=instance).success
    assert (tmp_path / folder / "history" / "runs" / "index.db").exists()
    if folder != "home":
        assert not (home / "history").exists(), "nothing written beside the user's storage"


def _an_asset():
    @dg.asset
    def anything():
        return 1

    return anything


@pytest.mark.slow
def test_another_process_writes_between_a_commands_writes(tmp_path):
    """A second process (the demo's other one, a `dg dev` run) writes to the same files at the same time as the
    command's storage, which keeps the index's connection: every event of both lands, in the index and in the
    run's own file."""
    writer = textwrap.dedent(f"""
        import sys
        from dagster._core.storage.event_log import SqliteEventLogStorage
        from b3_dagster.defs.shared.instance import OneProcessSqliteEventLogStorage
        from b3_dagster_tests.defs.test_command_instance import planned_check
        kind = sys.argv[1]
        storage = (OneProcessSqliteEventLogStorage if kind == "ours" else SqliteEventLogStorage)({str(tmp_path)!r})
        print("ready", flush=True)
        sys.stdin.readline()
        for n in range(100):  # each a row of the index and an event of the run's file
            storage.store_event(planned_check("run-shared", [], check_name=f"{{kind}} {{n}}"))
        storage.dispose()
        """)
    SqliteEventLogStorage(str(tmp_path)).dispose()  # the index exists before both start
    writers = [subprocess.Popen([sys.executable, "-c", writer, kind], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
               for kind in ("ours", "dagster")]
    for process in writers:
        assert process.stdout.readline() == "ready\n", process.communicate()[1]
    for process in writers:  # both start writing together
        process.stdin.write("go\n")
        process.stdin.flush()
    for process in writers:
        _, errors = process.communicate(timeout=120)
        assert process.returncode == 0, errors
    index_rows = [name for (name,) in sqlite3.connect(tmp_path / "index.db").execute(
        "SELECT check_name FROM asset_check_executions ORDER BY id")]
    storage = SqliteEventLogStorage(str(tmp_path))
    run_events = [record.event_log_entry.dagster_event.event_specific_data.check_name
                  for record in storage.get_records_for_run("run-shared", limit=1000).records]
    storage.dispose()
    for kind in ("ours", "dagster"):  # each process's rows and events all there, in its order
        expected = [f"{kind} {n}" for n in range(100)]
        assert [name for name in index_rows if name.startswith(kind)] == expected
        assert [name for name in run_events if name.startswith(kind)] == expected


def test_between_two_uses_the_kept_connections_hold_no_lock_and_dispose_checkpoints_the_log(tmp_path):
    storage = OneProcessSqliteEventLogStorage(str(tmp_path))
    storage.store_event(planned_check("run-1", SESSIONS.get_partition_keys()[:3]))
    for shard in ("index", "run-1"):  # another connection (another process's, say) takes each file at once
        other = sqlite3.connect(tmp_path / f"{shard}.db", timeout=0)
        other.execute("BEGIN EXCLUSIVE")
        other.rollback()
        other.close()
    assert (tmp_path / "index.db-wal").exists(), "the shards are in WAL mode, the connections still open"
    storage.dispose()
    assert not list(tmp_path.glob("*.db-wal")), "the last connection closed: the log checkpointed into the database"


@pytest.mark.slow
def test_what_a_killed_command_committed_is_there_for_the_next_reader(tmp_path):
    """SIGKILL leaves the index's kept connection unclosed and its log not checkpointed: SQLite's next reader
    recovers every committed row from the log (the demo's second process, `dg dev`, a later command)."""
    writer = textwrap.dedent(f"""
        import time
        from b3_dagster.defs.shared.instance import OneProcessSqliteEventLogStorage
        from b3_dagster_tests.defs.test_command_instance import planned_check
        storage = OneProcessSqliteEventLogStorage({str(tmp_path)!r})
        for n in range(40):
            storage.store_event(planned_check("killed-run", [], check_name=f"check {{n}}"))  # a row of the index
        print("committed", flush=True)
        time.sleep(60)
        """)
    process = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=Path(__file__).resolve().parents[2])
    assert process.stdout.readline() == "committed\n", process.communicate()[1]
    assert (tmp_path / "index.db-wal").stat().st_size > 0, "the rows are in the log, not yet in the database"
    process.kill()
    process.wait(timeout=30)
    rows = sqlite3.connect(tmp_path / "index.db").execute(
        "SELECT check_name FROM asset_check_executions ORDER BY id").fetchall()
    assert rows == [(f"check {n}",) for n in range(40)]


@pytest.mark.slow
def test_dg_dev_streams_a_runs_events_while_the_command_writes_them(tmp_path):
    """Dagster's event log watcher (what `dg dev` streams a run's page from, in another process) sees each event of
    a run as the command's storage commits it, not when the command ends."""
    writer = textwrap.dedent(f"""
        import logging, sys, time
        from dagster._core.events.log import EventLogEntry
        from b3_dagster.defs.shared.instance import OneProcessSqliteEventLogStorage
        storage = OneProcessSqliteEventLogStorage({str(tmp_path)!r})
        def event(message):
            storage.store_event(EventLogEntry(error_info=None, level=logging.INFO, run_id="live-run",
                                              user_message=message, timestamp=time.time()))
        event("started")
        print("ready", flush=True)
        for n in range(5):
            sys.stdin.readline()
            event(f"event {{n}}")
        sys.stdin.readline()
        storage.dispose()
        """)
    process = subprocess.Popen([sys.executable, "-c", writer], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline() == "ready\n", process.communicate()[1]
    watcher = SqliteEventLogStorage(str(tmp_path))
    seen = []
    watcher.watch("live-run", watcher.get_records_for_run("live-run").cursor,
                  lambda entry, cursor: seen.append(entry.user_message))
    try:
        for n in range(5):  # one event at a time, each seen before the next is written
            process.stdin.write("next\n")
            process.stdin.flush()
            deadline = time.monotonic() + 20
            while f"event {n}" not in seen and time.monotonic() < deadline:
                time.sleep(0.05)
            assert seen == [f"event {k}" for k in range(n + 1)], "the watcher sees each event while the run goes on"
    finally:
        process.stdin.write("end\n")
        process.stdin.flush()
        process.wait(timeout=30)
        watcher.dispose()
