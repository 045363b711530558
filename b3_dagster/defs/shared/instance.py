"""The Dagster instance of a b3-dagster command's own process (the demo, import-csv): Dagster's local instance from
DAGSTER_HOME, with two costs of its SQLite storage taken off. Each change writes the same rows, byte for byte, to the
same files, so `dg dev` and the daemon (which read dagster.yaml and keep Dagster's classes) see exactly what Dagster
would have written.

- Compute logs: the command's runs print nothing (their lines are events, its console lines are its own), and
  Dagster's local compute log manager would still start four helper processes per run (two `tail -F`, two Python
  watchers) to mirror this process's stdout and stderr into files that stay empty.
- The event log (``OneProcessSqliteEventLogStorage``): see its docstring.

An instance file that names a storage of its own (PostgreSQL, a SQLite folder elsewhere) keeps it: only Dagster's
default storage under DAGSTER_HOME is replaced, by the same files through the class below.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import dagster as dg
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._serdes import serialize_value
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

NO_COMPUTE_LOGS = {"module": "dagster._core.storage.noop_compute_log_manager", "class": "NoOpComputeLogManager"}


class OneProcessSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log, with its rows written as Dagster writes them, and two costs of 1.13.27 left out:

    - Every connection made a new SQLAlchemy engine, so every statement was compiled again: once per event and
      shard, 2-3 times per event. Here each shard keeps one engine for the instance's life. Its pool is still
      ``NullPool`` with Dagster's busy timeout, so each use still opens, commits and closes its own SQLite
      connection, and other processes (the demo's second one, `dg dev`'s runs) interleave with it as before.
    - A run over a range of partitions plans each of its asset checks once per partition of the range (the refine's
      one run over 821 sessions: 7 x 821 rows), and Dagster serialised the same ~8 KB event again for each row,
      about 0.8 ms each: 4.6 s of the demo's first process. Here it is serialised once per planned check.
    """

    def __init__(self, base_dir: str, inst_data=None):
        self._engines: dict[str, Engine] = {}  # before Dagster's __init__, which already connects
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> Engine:
        if shard not in self._engines:
            self._engines[shard] = create_engine(self.conn_string_for_shard(shard), poolclass=NullPool,
                                                 connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
        return self._engines[shard]

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        # Dagster's own order: under the storage's lock, create the shard's tables on its first use, then one
        # connection in one transaction
        with self._db_lock:  # the engines too are kept under it
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

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

    def dispose(self) -> None:
        super().dispose()
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()


def command_instance(home: str | None) -> dg.DagsterInstance:
    """The instance of a command's own runs: ephemeral without DAGSTER_HOME, else Dagster's local one from it."""
    if not home:
        return dg.DagsterInstance.ephemeral()
    overrides: dict = {"compute_logs": NO_COMPUTE_LOGS}
    if InstanceRef.from_dir(home).storage_data == InstanceRef.config_defaults(home)["storage"]:
        # Dagster's default storage (no storage in dagster.yaml): the same three SQLite folders, as three storages
        # so that the event log can be this module's
        defaults = InstanceRef.config_defaults(home)
        overrides.update({
            "run_storage": _as_override(defaults["run_storage"]),
            "schedule_storage": _as_override(defaults["schedule_storage"]),
            "event_log_storage": {"module": __name__, "class": OneProcessSqliteEventLogStorage.__name__,
                                  "config": _as_override(defaults["event_log_storage"])["config"]},
        })
    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(home, overrides=overrides))


def _as_override(data) -> dict:
    import yaml

    return {"module": data.module_name, "class": data.class_name, "config": yaml.safe_load(data.config_yaml)}
