"""The Dagster instance of a b3-dagster command's own process (the demo, import-csv): Dagster's local instance from
DAGSTER_HOME, with costs of its SQLite storage taken off. It writes the rows Dagster writes, byte for byte, to the
same files (only the compute logs' empty files are left out), so `dg dev` and the daemon (which read dagster.yaml and
keep Dagster's classes) see exactly what Dagster would have written.

- Compute logs: the command's runs print nothing (their lines are events, its console lines are its own), and
  Dagster's local compute log manager would still start four helper processes per run (two `tail -F`, two Python
  watchers) to mirror this process's stdout and stderr into files that stay empty.
- The event log (``OneProcessSqliteEventLogStorage``): see its docstring.

An instance file that names a storage of its own (PostgreSQL, SQLite in any folder, DAGSTER_HOME's own included) keeps
it: only when dagster.yaml names no storage is Dagster's default one replaced, by the same files through the class
below.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from contextlib import contextmanager, suppress
from typing import Iterator

import dagster as dg
import yaml
from dagster._core.instance.config import dagster_instance_config
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._serdes import serialize_value
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool, QueuePool

STORAGE_KEYS = {"storage", "run_storage", "event_log_storage", "schedule_storage"}  # dagster.yaml's
NO_COMPUTE_LOGS = {"module": "dagster._core.storage.noop_compute_log_manager", "class": "NoOpComputeLogManager"}


class OneProcessSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log, with its rows written as Dagster writes them, and three costs of 1.13.27 left out:

    - Every use of a shard (the index, or a run's own file; 2-3 per event) made a new SQLAlchemy engine, compiled
      its statements again and opened and closed its own SQLite connection; the shards are in WAL mode, where
      closing the last connection also checkpoints the log into the database. Here each shard keeps its engine for
      the instance's life, and the index (every asset event and check row lands there) keeps one connection too
      (SQLAlchemy's ``QueuePool`` of one, its default for a SQLite file). Each use is still one transaction, committed
      before the next, under Dagster's lock of the storage (so one thread at a time, whichever it is). An idle
      connection holds no lock: another process (the demo's second one, a `dg dev` run) reads and writes between
      two uses, with Dagster's busy timeout; SQLite checkpoints the log as it fills, and when the instance is
      disposed. A run's own file is still opened and closed per use, as Dagster did: `dg dev` streams a run's events
      by watching that file change, which in WAL mode it does when the log is checkpointed (and a connection per
      run's file would keep three file handles per run open).
    - A run over a range of partitions plans each of its asset checks once per partition of the range (the refine's
      one run over 821 sessions: 7 x 821 rows), and Dagster serialised the same ~8 KB event again for each row,
      about 0.8 ms each: 4.6 s of the demo's first process. Here it is serialised once per planned check.
    - Each run's new file was made by Dagster's ``_initdb``: its tables created, then alembic loading its revision
      scripts to check and stamp the schema, about 0.12 s of CPU per run (2.2 s of the demo's 19 runs, sampled with
      py-spy, 2026-12-01). Here the first run's file of the process is made that way, into a scratch file, and each
      new run's file is a copy of it, put in place only if no other process made the file first (else Dagster's
      ``_initdb`` runs on it, as before).
    """

    def __init__(self, base_dir: str, inst_data=None):
        self._engines: dict[str, Engine] = {}  # before Dagster's __init__, which already connects
        self._empty_run_file: bytes | None = None
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> Engine:
        if shard not in self._engines:
            kept = {"poolclass": QueuePool, "pool_size": 1, "max_overflow": 0} if shard == INDEX_SHARD_NAME \
                else {"poolclass": NullPool}
            self._engines[shard] = create_engine(
                self.conn_string_for_shard(shard), **kept,
                # used by one thread at a time (the storage's lock), not always the one that opened it
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False})
        return self._engines[shard]

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:  # Dagster's lock; the engines too are kept under it
            if shard not in self._initialized_dbs:  # the shard's tables, by Dagster's own code on its own engine
                if shard == INDEX_SHARD_NAME or not self._made_from_an_empty_run_file(shard):
                    self._initdb(_scratch_engine(self.conn_string_for_shard(shard)))
                self._initialized_dbs.add(shard)
            with self._engine(shard).connect() as conn, conn.begin():
                yield conn

    def _made_from_an_empty_run_file(self, shard: str) -> bool:
        """Puts a copy of an empty run's file (made once per process by Dagster's ``_initdb``) at ``shard``'s path,
        unless a file is there already. Linked into place from a private file: never half-written, never over
        another process's file."""
        path = self.path_for_shard(shard)
        if os.path.exists(path):
            return False
        if self._empty_run_file is None:
            with tempfile.TemporaryDirectory() as folder:
                scratch = os.path.join(folder, "empty.db")
                engine = _scratch_engine(f"sqlite:///{scratch}")
                self._initdb(engine)
                engine.dispose()  # closes its last connection: SQLite checkpoints the log into the file
                if os.path.exists(f"{scratch}-wal"):
                    return False
                with open(scratch, "rb") as made:
                    self._empty_run_file = made.read()
        private = f"{path}-{uuid.uuid4().hex}.tmp"  # this call's own (another storage object may make the same run's)
        try:
            # with the mode SQLite gives the files it creates (0644, less the umask), as Dagster's own are
            with os.fdopen(os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), "wb") as copy:
                copy.write(self._empty_run_file)
            os.link(private, path)
        except OSError:  # another process made it meanwhile (FileExistsError), or no hard links here
            return False
        finally:  # a Ctrl-C included
            with suppress(FileNotFoundError):
                os.unlink(private)
        return True

    def _store_asset_check_evaluation_planned(self, event, event_id) -> None:
        planned = event.dagster_event.event_specific_data
        partition_keys = planned.partitions_subset.get_partition_keys() if planned.partitions_subset else [None]
        row = dict(asset_key=planned.asset_key.to_string(), check_name=planned.check_name, run_id=event.run_id,
                   execution_status=AssetCheckExecutionRecordStatus.PLANNED.value,
                   evaluation_event=serialize_value(event),
                   evaluation_event_timestamp=self._event_insert_timestamp(event),
                   evaluation_event_storage_id=event_id)
        with self.index_connection() as conn:
            conn.execute(AssetCheckExecutionsTable.insert().values(
                [{**row, "partition": partition_key} for partition_key in partition_keys]))

    def wipe(self) -> None:
        self._close_connections()  # before the run shards' files are deleted
        super().wipe()

    def dispose(self) -> None:
        super().dispose()
        self._close_connections()

    def _close_connections(self) -> None:
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()


def _scratch_engine(conn_string: str) -> Engine:
    return create_engine(conn_string, poolclass=NullPool, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})


def command_instance(home: str | None) -> dg.DagsterInstance:
    """The instance of a command's own runs: ephemeral without DAGSTER_HOME, else Dagster's local one from it."""
    if not home:
        return dg.DagsterInstance.ephemeral()
    overrides: dict = {"compute_logs": NO_COMPUTE_LOGS}
    configured, _ = dagster_instance_config(home)
    if not STORAGE_KEYS & set(configured):
        # Dagster's default storage (dagster.yaml names none): the same three SQLite folders, as three storages so
        # that the event log can be this module's. (Dagster refuses these three keys beside a `storage` key, even one
        # that names the very same folders.)
        defaults = InstanceRef.config_defaults(home)
        overrides.update({
            "run_storage": _as_override(defaults["run_storage"]),
            "schedule_storage": _as_override(defaults["schedule_storage"]),
            "event_log_storage": {"module": __name__, "class": OneProcessSqliteEventLogStorage.__name__,
                                  "config": _as_override(defaults["event_log_storage"])["config"]},
        })
    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(home, overrides=overrides))


def _as_override(data) -> dict:
    return {"module": data.module_name, "class": data.class_name, "config": yaml.safe_load(data.config_yaml)}
