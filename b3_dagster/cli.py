"""``b3-dagster``: the offline demo, the CSV history import and SQL queries on the catalogued tables.

    b3-dagster demo                 # replay recorded real days through the whole pipeline (no network)
    b3-dagster import-csv FILE...   # past portfolios from B3's IBOVDia CSV downloads into raw partitions
    b3-dagster import-index-history FILE...   # B3's Evolução Diária/Mensal downloads (official closes) into raw
    b3-dagster import-index-csv FILE...       # B3's Carteira do Dia downloads of any index into raw
    b3-dagster query "SQL"          # Athena-style SQL on the Iceberg tables (through DuckDB)
    b3-dagster query --as-of 2026-11-30T10:00:00Z "SQL"   # ... as the tables were then (or --as-of <snapshot id>)
    b3-dagster snapshots            # each table's snapshots (ids and times, for --as-of)
    b3-dagster rebuild-tables       # rebuild the Iceberg tables from raw (e.g. a lake from before the tables)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import io
import logging
import os
import re
import sys
from collections import Counter
from pathlib import Path

from b3_dagster.errors import B3DagsterError, ConfigError, DemoStepsStopped
from b3_dagster.library_warnings import quiet_library_warnings

SEED_000_QUERIES = {
    "10 primeiros registros": "SELECT * FROM default.tb_ibov_refined LIMIT 10",
    "Soma total de participação": "SELECT SUM(soma_part) AS total_participacao FROM default.tb_ibov_refined",
    "Participação por setor": "SELECT setor, SUM(soma_part) AS total_part FROM default.tb_ibov_refined "
                              "GROUP BY setor ORDER BY total_part DESC",
}
# The instance file the demo writes into an empty DAGSTER_HOME: a laptop's instance (SQLite under DAGSTER_HOME),
# without the telemetry banner that Dagster otherwise prints in the middle of the demo's first step.
LOCAL_INSTANCE_YAML = """\
# Written by `b3-dagster demo`: the local Dagster instance (runs, events and schedules in SQLite files here).
telemetry:
  enabled: false
"""


def _dagster_home() -> str | None:
    """DAGSTER_HOME, when set; Dagster would resolve a relative one against each process's working folder."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        return None
    folder = os.path.expanduser(home)
    if not os.path.isabs(folder) or (os.path.exists(folder) and not os.path.isdir(folder)):
        raise ConfigError(f"DAGSTER_HOME={home!r}: expected an absolute path to a folder, e.g. "
                          f"DAGSTER_HOME=$PWD/.dagster_home as scripts/run_local.sh exports it")
    return folder


def _local_instance_home() -> None:
    """Give DAGSTER_HOME (when set) an instance file if it has none: no "No dagster instance configuration file"
    line, no telemetry banner. An existing dagster.yaml is the user's and is left alone."""
    home = _dagster_home()
    if not home:
        return
    folder = Path(home)
    folder.mkdir(parents=True, exist_ok=True)
    if not any((folder / name).exists() for name in ("dagster.yaml", "dagster.yml")):
        (folder / "dagster.yaml").write_text(LOCAL_INSTANCE_YAML)


def _apply_defaults(lake: str | None) -> None:
    from b3_dagster.settings import LOCAL_DEFAULTS  # declared once; plain Python: no Dagster import for a query

    for name, value in LOCAL_DEFAULTS.items():
        os.environ.setdefault(name, value)
    if lake:
        os.environ["B3_LAKE_ROOT"] = lake


def _tables():
    import b3_dagster  # the tables as a notebook opens them: without loading the code location (and Dagster)

    return b3_dagster.open_lake_tables(os.environ["B3_LAKE_ROOT"], os.environ["B3_CATALOG"])


def _store():
    from b3_dagster.storage.lakes import lake_from_uri
    from b3_dagster.storage.portfolio_store import PortfolioStore

    return PortfolioStore(lake_from_uri(os.environ["B3_LAKE_ROOT"]))


def _print_frame(title: str, frame, shown: int) -> None:
    print(f"\n-- {title}")
    print(frame.head(shown).to_string(index=False) if not frame.empty else "(no rows)")
    if len(frame) > shown:
        print(f"   ... {len(frame)} rows in all")


def _summarise_statuses(statuses: list[str]) -> str:
    """``23 written`` or ``3 replaced, 20 unchanged``: how a batch of files went into raw/."""
    return ", ".join(f"{count} {status}" for status, count in sorted(Counter(statuses).items()))


def _instance():
    """Dagster's local instance from DAGSTER_HOME (ephemeral without it), for this command's own runs: see
    b3_dagster/defs/shared/instance.py for what it leaves out and why."""
    from b3_dagster.defs.shared.instance import command_instance

    return command_instance(_dagster_home())


def _first_cause(error) -> str:
    """The message of the error a step raised, not of Dagster's wrapper ("Error occurred while executing op ...")."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


def run_job(defs, job: str, instance, *, partition_key: str | None = None, start: str | None = None,
         end: str | None = None, run_config=None, tags: dict[str, str] | None = None) -> None:
    from b3_dagster.defs.alerts.sensors import DEMO_LAKE_REASON, FRESHNESS_CHECK
    from b3_dagster import settings
    from b3_dagster.defs.shared.metadata import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG

    tags = {**(tags or {}), **({PARTITION_RANGE_START_TAG: start, PARTITION_RANGE_END_TAG: end} if start else {})}
    quiet = {"loggers": {"console": {"config": {"log_level": settings.get("B3_LOG_LEVEL")}}}}
    result = defs.resolve_job_def(job).execute_in_process(
        partition_key=partition_key, tags=tags, instance=instance, run_config={**quiet, **(run_config or {})},
        raise_on_error=False)
    evaluations = result.get_asset_check_evaluations()
    failed = [e.check_name for e in evaluations if not e.passed]
    planned = {key.name for key in defs.resolve_job_def(job).asset_layer.asset_graph.asset_check_keys}
    skipped = sorted(planned - {e.check_name for e in evaluations}) if result.success else []
    label = partition_key or (f"{start}..{end}" if start else "")
    if not result.success:
        errors = [_first_cause(event.event_specific_data.error) for event in result.all_events
                  if event.event_type_value == "STEP_FAILURE"]
        raise SystemExit(f"{job} {label} failed: {' | '.join(errors) or 'see the run log'}")
    print(f"  {job} {label}: ok, {len(result.get_asset_materialization_events())} materialisation(s)"
          + (f"; FAILED CHECKS: {failed}" if failed else f"; {len(evaluations)} checks passed" if evaluations else "")
          + (f"; skipped: {', '.join(skipped)}" if skipped else "")
          + (f" ({DEMO_LAKE_REASON})" if skipped == [FRESHNESS_CHECK] else ""))


def record_imports(instance, store, outcomes) -> int:
    """The imported raw days as materialisations of ibov_raw_snapshot in the instance, so the UI's lineage is true
    and raw_partition_sensor takes them for this project's own writes (it refines them once, and not at all when
    they are refined already)."""
    from b3_dagster.defs.automation.sensors import record_raw_days

    days = [o.portfolio_date for o in outcomes if o.ok and o.portfolio_date is not None]
    return record_raw_days(instance, store, days, source="b3-dagster import-csv",
                           description="Imported from B3's IBOVDia CSV download by b3-dagster import-csv.")


def demo(args: argparse.Namespace) -> int:
    """Replay recorded real B3 and Yahoo answers through raw -> refined -> tables -> charts, with no network."""
    if args.own_process:
        # Importing Dagster, pandas and pyarrow and loading the definitions make about a million long-lived objects
        # and next to no garbage; the collector would walk them again and again (1.6-1.9 s of each demo process,
        # measured with gc.callbacks, 2026-12-01). It stays off until the definitions are loaded (_DemoRuns), which
        # then freezes them, so that later collections leave them out.
        gc.disable()
    if args.steps == INDEX_STEPS:
        try:
            return _demo_index_steps(args)
        except KeyboardInterrupt:  # Ctrl-C reaches both processes: the first one says so, once
            return 130
    _demo_settings(args)
    with contextlib.ExitStack() as closing:  # the instance is disposed last: its SQLite connections closed
        return _demo_first_process(args, closing)


def _demo_first_process(args: argparse.Namespace, closing: contextlib.ExitStack) -> int:
    """Steps 1-3 and 9, and the queries, beside the second process's steps 4-8."""
    recordings_root = Path(__file__).resolve().parent / "recordings"
    started = dt.datetime.now(dt.timezone.utc)
    charts_output, charted = io.StringIO(), False
    try:
        # the second process is started first: its imports overlap this process's
        with _IndexStepsBeside(_index_steps_command(args.index_from, args.index_to)) as index_steps:
            runs = _DemoRuns(own_process=args.own_process)
            lake_root, instance = _demo_start()
            closing.callback(instance.dispose)
            runs.instance = instance
            print(f"Lake: {lake_root}   (recorded real answers replayed from {recordings_root})\n"
                  "Steps 4-8 (the index pipeline) run beside steps 1-3 in a second process; their output follows "
                  "step 3.")
            _demo_b3_api_days(runs)
            index_steps.raw_portfolios_written()
            store = _store()
            if not _demo_csv_imports(instance, store, recordings_root):
                return 1
            _demo_refine(runs, store)
            # step 9 also reads tables of steps 4 and 5: it runs as soon as the second process has written them, while
            # that process goes on with steps 6-8, and its output waits for theirs. (Without DAGSTER_HOME each process
            # has an instance of its own, which never sees the other's runs: step 9 then runs after the second one.)
            charted = index_steps.wait_for_success(instance, CHART_INPUT_JOBS, started)
            if charted:
                with contextlib.redirect_stdout(charts_output):
                    _demo_charts(runs)
    finally:
        print(charts_output.getvalue(), end="")
    if not charted:
        _demo_charts(runs)
    _demo_queries(lake_root)
    return 0


def _demo_settings(args: argparse.Namespace) -> None:
    """The settings both of the demo's processes run with (the second inherits them), and the instance file."""
    _apply_defaults(args.lake)
    # Dagster's SQLite event log stores each event on its own (about 10 ms of CPU); a range run otherwise writes one
    # "planned" event per partition and asset of its range (1,642 in the refine's run over 821 sessions).
    # Dagster's own switch writes one planned event per asset instead. What it gives up, for the demo's partitioned
    # runs only: the UI shows none of their partitions as failed or in progress (a failed run still shows as failed,
    # and the demo stops at it). Runs that `dg dev` and production launch keep Dagster's default.
    os.environ.setdefault("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "true")
    _local_instance_home()


def _demo_instance():
    """The instance, created by one demo process at a time. On a fresh DAGSTER_HOME both processes create its SQLite
    storages, and Dagster creates their tables and stamps their schema version without a lock: two at once fail
    with "table runs already exists" or "UNIQUE constraint failed: alembic_version.version_num". The lock is
    DAGSTER_HOME itself (flock on the folder), so no file is left behind."""
    home = _dagster_home()
    if not home:
        return _instance()  # an ephemeral instance in each process: nothing shared
    import fcntl
    import importlib

    importlib.import_module("dagster")  # imported before the lock: the other process need not wait for it

    folder = os.open(home, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        return _instance()
    finally:
        os.close(folder)  # releases the lock


def _demo_start():
    """The lake and the Dagster instance the demo writes to; the lake is marked as a demo lake (its freshness check
    is skipped, not failed)."""
    from b3_dagster.defs.alerts.sensors import mark_demo_lake
    from b3_dagster.defs.resources import LakeResource

    instance = _demo_instance()
    mark_demo_lake(LakeResource(root=os.environ["B3_LAKE_ROOT"]))
    return Path(os.environ["B3_LAKE_ROOT"]).resolve(), instance


# The demo's two pipelines share no step until the charts (step 9 reads tb_ibov_refined, and the ibov_refined and
# index_closes of steps 4 and 5), so the index pipeline's steps run in a second process beside the portfolio's
# (2 cores: 32-36 s instead of 43 s of wall clock, before the gc.freeze in main; benchmarks/demo.py). Dagster's
# SQLite instance and the Iceberg SQL catalog take writers from several processes, as `dg dev`'s runs do. One order
# matters: step 7 compares GetStockIndex's members with the IBOV portfolios that step 1 writes, so the second
# process waits for a line on its stdin before step 7.
# The same stdin tells it to stop when this process fails, so the user is not kept waiting for steps nobody needs.
INDEX_STEPS = "index"
INDEX_TABLE_JOB = "ibov_index_refine_job"  # step 4's run that writes b3_refined_db.ibov_refined
INDEX_CLOSES_JOB = "index_closes_job"  # step 5's run that writes b3_refined_db.index_closes
# the second process's runs whose tables step 9 reads: ibov_index_chart draws ibov_refined with the close of record
# from index_closes (with_close_of_record); before step 5's commit it would draw Yahoo's closes where B3's official
# ones are recorded
CHART_INPUT_JOBS = (INDEX_TABLE_JOB, INDEX_CLOSES_JOB)
# on each of the second process's runs: the first process's id, so that the first waits for its own second process's
# runs, not for those of another demo on the same DAGSTER_HOME or of a job launched from the UI meanwhile
DEMO_FIRST_PROCESS_TAG = "b3/demo_first_process"
RAW_PORTFOLIOS_WRITTEN = "raw portfolios written"
STOP = "stop"


def _index_steps_command(index_from: str, index_to: str) -> list[str]:
    """The second process's command. ``-P``: this process's b3_dagster, not one in the current folder (another
    checkout or worktree that the user runs the installed command from)."""
    return [sys.executable, "-P", "-m", "b3_dagster.cli", "demo", "--steps", INDEX_STEPS,
            "--index-from", index_from, "--index-to", index_to]


class _IndexStepsBeside:
    """``b3-dagster demo --steps index`` (``command``) in a second process. Its output is kept in a file and printed
    after the portfolio's steps, so the two never interleave; its stderr (a failure's one line) goes straight
    through. Whatever happens in this process, the second one is waited for, never killed (a killed run would stay
    "started" in the instance): told to stop, or without the go-ahead, it stops before its next run."""

    def __init__(self, command: list[str]):
        import subprocess
        import tempfile

        self.output = tempfile.TemporaryFile()
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=self.output)

    def __enter__(self) -> _IndexStepsBeside:
        return self

    def raw_portfolios_written(self) -> None:
        self._say(RAW_PORTFOLIOS_WRITTEN)

    def wait_for_success(self, instance, jobs: tuple[str, ...], since: dt.datetime) -> bool:
        """Wait until each of ``jobs`` has a run created after ``since`` that succeeded in the instance: True. False
        as soon as the second process has ended without them, or has failed after them (it failed or was told to
        stop; ``__exit__`` says how, and step 9 is not run for nothing)."""
        import time

        import dagster as dg

        ours = {DEMO_FIRST_PROCESS_TAG: str(os.getpid())}

        def all_succeeded() -> bool:
            return all(instance.get_runs_count(dg.RunsFilter(
                job_name=job, statuses=[dg.DagsterRunStatus.SUCCESS], created_after=since, tags=ours))
                for job in jobs)

        while self.process.poll() is None:
            if all_succeeded():
                return True
            time.sleep(0.1)
        return self.process.returncode == 0 and all_succeeded()

    def _say(self, line: str) -> None:
        try:
            self.process.stdin.write(f"{line}\n".encode())
            self.process.stdin.flush()
        except BrokenPipeError:  # it has ended already; __exit__ says how
            pass

    def __exit__(self, error_type, error, trace) -> None:
        if error_type is not None:
            self._say(STOP)  # this process failed or was interrupted: the other stops at its next run
        try:
            self.process.stdin.close()  # the end of what it hears: without the go-ahead, it stops
        except BrokenPipeError:
            pass
        code = self.process.wait()
        self.output.seek(0)
        printed = self.output.read()
        self.output.close()
        # Its bytes go through as it wrote them: it writes in the encoding this process's stdout has (the same locale
        # or PYTHONIOENCODING: Latin-1 on a pt_BR.ISO-8859-1 terminal), which need not be UTF-8.
        sys.stdout.flush()
        if hasattr(sys.stdout, "buffer"):
            sys.stdout.buffer.write(printed)
            sys.stdout.buffer.flush()
        else:  # a stdout replaced by a text-only stream
            sys.stdout.write(printed.decode(sys.stdout.encoding or "utf-8", errors="replace"))
        if code != 0 and error_type is None:
            raise SystemExit(f"the index pipeline's steps (4-8) failed (exit {code}): see above")


class _FirstProcess:
    """What the demo's second process hears from the first, on its stdin: the go-ahead for step 7, or "stop". It is
    read from the file descriptor itself, without Python's buffer, so that a check between runs never blocks and
    never misses a line that the buffer took in with an earlier one."""

    def __init__(self):
        self.pid = os.getppid()
        self.raw_written = False
        self.ended = False  # the first process closed our stdin: nothing more will come
        self._pending = b""

    def check(self, before: str) -> None:
        """Between runs: stop if the first process has died, said "stop", or ended without the go-ahead."""
        import select

        if os.getppid() != self.pid:
            raise DemoStepsStopped(f"the first process ({self.pid}) has ended; {before} not run")
        while not self.ended and select.select([0], [], [], 0)[0]:
            self._read()
        if self.ended and not self.raw_written:
            raise DemoStepsStopped(f"the first process stopped; {before} not run")

    def wait_for_raw(self, before: str) -> None:
        while not self.raw_written and not self.ended:
            self._read()
        self.check(before)

    def _read(self) -> None:
        data = os.read(0, 4096)
        if not data:
            self.ended = True
        self._pending += data
        *lines, self._pending = self._pending.split(b"\n")
        for said in (line.decode().strip() for line in lines):
            if said == STOP:
                raise DemoStepsStopped("the first process failed")
            self.raw_written = self.raw_written or said == RAW_PORTFOLIOS_WRITTEN


def _demo_index_steps(args: argparse.Namespace) -> int:
    """Steps 4-8: the demo's second process (its settings and instance file come from the first)."""
    first = _FirstProcess()
    runs = _DemoRuns(before_each_run=first.check, own_process=args.own_process,
                     tags={DEMO_FIRST_PROCESS_TAG: str(first.pid)})
    runs.instance = _demo_instance()
    recordings_root = Path(__file__).resolve().parent / "recordings"
    try:
        _demo_index_history(runs, args.index_from, args.index_to)
        store = _indices_store()
        _demo_index_closes(runs, store, recordings_root)
        _demo_index_portfolios(runs, store)
        first.wait_for_raw("step 7 (it compares with the IBOV raw portfolios of step 1)")
        _demo_index_membership(runs)
        _demo_anomalies(runs)
    except DemoStepsStopped as stopped:
        print(f"\nThe index steps stopped: {stopped}.")
        return 1
    finally:
        runs.instance.dispose()  # its SQLite connections closed, their logs checkpointed
    return 0


class _CtrlCDuringRuns:
    """A Ctrl-C (SIGINT) that arrived during one of the demo's in-process runs, seen after it. Such a run captures
    SIGINT into a flag that it checks only when it enters user code (a step, a resource) and clears when it ends:
    a Ctrl-C during its last events was lost, and the demo went on. CPython also writes the number of each signal it
    receives to the wakeup fd, whichever Python handler is installed: a pipe here, read after each run. Main thread
    only (a signal module rule)."""

    def __init__(self):
        import signal

        self._received, write = os.pipe()
        os.set_blocking(self._received, False)
        os.set_blocking(write, False)
        signal.set_wakeup_fd(write, warn_on_full_buffer=False)

    def raise_if_seen(self) -> None:
        import signal

        try:
            numbers = os.read(self._received, 4096)
        except BlockingIOError:  # no signal since the last look
            return
        if signal.SIGINT in numbers:
            raise KeyboardInterrupt


class _DemoRuns:
    """The demo's Dagster instance and its definitions, loaded once: each load of ``defs/`` costs 0.2-0.5 s of CPU,
    and the demo makes 19 runs (of 14 jobs), most with a replay of their own as a resource. The instance is set
    after the definitions are loaded: of the demo's two processes, the one that waits for the instance lock
    (``_demo_instance``) then waits less, or not at all, since importing the definitions takes most of its start."""

    def __init__(self, before_each_run=None, own_process: bool = False, tags: dict[str, str] | None = None):
        imported_before = "b3_dagster.definitions" in sys.modules
        from b3_dagster import definitions

        self.instance = None
        self.before_each_run = before_each_run  # the demo's second process: _FirstProcess.check
        # the demo's own processes (not an in-process caller): a Ctrl-C that a run swallowed is raised after it
        self.ctrl_c = _CtrlCDuringRuns() if own_process else None
        self.tags = tags or {}  # on each run
        # the code location that importing the module just loaded, from this command's settings; a module imported
        # earlier in this process (a caller's) may have loaded them from other settings
        self.loaded = definitions.build_definitions() if imported_before else definitions.defs
        if own_process:  # see demo(): what is loaded now stays for the whole process
            gc.freeze()
            gc.enable()

    def run(self, job: str, overrides: dict | None = None, **run_args) -> None:
        from b3_dagster.definitions import build_definitions

        if self.before_each_run:
            self.before_each_run(job)
        try:
            run_job(build_definitions(overrides, loaded=self.loaded), job, self.instance, tags=self.tags, **run_args)
        finally:  # a run that failed because of a Ctrl-C is reported as the Ctrl-C
            if self.ctrl_c:
                self.ctrl_c.raise_if_seen()


def _demo_b3_api_days(runs: _DemoRuns) -> None:
    from b3_dagster.defs.resources import B3PortfolioResource
    from b3_dagster.replay.b3_api import B3Replay, recorded_days

    print("\n1. B3 GetPortfolioDay, replayed on 127.0.0.1 one recorded day at a time -> raw/")
    for recording in recorded_days():
        with B3Replay(recording) as replay:
            runs.run("ibov_snapshot_job", {"b3": B3PortfolioResource(base_url=replay.base_url,
                                                                    language=recording.language)},
                     partition_key=recording.date)


def _demo_csv_imports(instance, store, recordings_root: Path) -> bool:
    """The shipped IBOVDia CSV downloads into raw/, recorded in the instance; False if one could not be imported."""
    from b3_dagster.storage.history_import import exit_code, format_outcome, import_files
    from b3_dagster.storage.layout import RAW_PREFIX

    print("\n2. Past portfolios from B3's IBOVDia CSV downloads -> raw/")
    csv_files = sorted((recordings_root / "b3_csv").glob("*.csv")) + sorted(
        (recordings_root / "b3_csv" / "standard").glob("*.csv"))
    outcomes = import_files(csv_files, store)
    for outcome in outcomes:
        if not outcome.ok:  # one line per file only for a refused one (b3-dagster import-csv prints them all)
            print("  " + format_outcome(outcome))
    if exit_code(outcomes):
        return False
    days = sorted(o.portfolio_date for o in outcomes if o.portfolio_date is not None)
    print(f"  {len(outcomes)} downloads: {_summarise_statuses([o.status for o in outcomes])} "
          + (f"(portfolios of {days[0]}..{days[-1]}) " if days else "") + f"-> {store.lake.uri(RAW_PREFIX)}")
    recorded = record_imports(instance, store, outcomes)
    print(f"  {recorded} imported day(s) recorded as materialisations of ibov_raw_snapshot")
    return True


def _demo_refine(runs: _DemoRuns, store) -> None:
    raw_days = store.raw_days()
    print(f"\n3. Sectors refined -> default.tb_ibov_refined: ONE run over {raw_days[0]}..{raw_days[-1]}\n"
          f"   ({len(raw_days)} days with raw; the sessions between are skipped by name); then "
          "b3_refined_db.classificacao_setorial and the sector weights chart")
    runs.run("ibov_refine_job", start=raw_days[0].isoformat(), end=raw_days[-1].isoformat())
    runs.run("b3_sectors_job")


def _demo_index_history(runs: _DemoRuns, first_day: str, last_day: str) -> None:
    from b3_dagster.defs.resources import YahooChartResource
    from b3_dagster.replay.yahoo import serve_chart_recordings

    print(f"\n4. IBOVESPA daily history (Yahoo chart API replay) {first_day}..{last_day}")
    server, yahoo_url = serve_chart_recordings()
    try:
        yahoo = {"yahoo": YahooChartResource(base_url=yahoo_url)}
        runs.run("ibov_index_job", yahoo, start=first_day, end=last_day)
        first_month = dt.date.fromisoformat(first_day).replace(day=1).isoformat()
        last_month = dt.date.fromisoformat(last_day).replace(day=1).isoformat()
        runs.run("ibov_index_refine_job", yahoo, start=first_month, end=last_month)
    finally:
        server.shutdown()
        server.server_close()


def _demo_charts(runs: _DemoRuns) -> None:
    print("\n9. The index chart and the sector participation chart (they read both pipelines' tables) -> charts/")
    runs.run("ibov_charts_job")


def _demo_queries(lake_root: Path) -> None:
    from b3_dagster.storage.tables import connect, run_query

    tables = _tables()
    print(f"\nTable default.tb_ibov_refined: Apache Iceberg, {tables.description}")
    connection = connect(tables)
    for title, sql in {**SEED_000_QUERIES, **INDICES_QUERIES}.items():
        _print_frame(f"{title}: {sql}", run_query(connection, sql), shown=10)
    print(f"\nCharts: {lake_root / 'charts'}")
    print('Query it yourself: b3-dagster query "SELECT * FROM default.tb_ibov_refined LIMIT 10"')


# ---- every B3 index (issue 14): the demo's steps 5-8 and the imports of B3's index downloads -------------------------
INDICES_QUERIES = {
    "B3's official closes by index and year": "SELECT indice, year(data) AS ano, count(*) AS fechamentos, "
                                               "min(fechamento) AS minimo, max(fechamento) AS maximo "
                                               "FROM b3_refined_db.index_closes GROUP BY 1, 2 ORDER BY 1, 2",
    "Portfolios of other indices": "SELECT indice, DataCarteira, count(*) AS acoes, round(sum(part), 3) AS soma_part "
                                   "FROM b3_refined_db.index_portfolios GROUP BY 1, 2 ORDER BY 1, 2",
    "Index membership (GetStockIndex)": "SELECT data_atualizacao, count(DISTINCT cod) AS papeis, "
                                        "count(DISTINCT indice) AS indices FROM b3_refined_db.index_membership "
                                        "GROUP BY 1 ORDER BY 1",
    "Most anomalous IBOVESPA days": "SELECT data, variacao_pct, vol_zscore, round(anomalia_score, 4) AS score, "
                                    "anomalia FROM b3_refined_db.ibov_anomalies ORDER BY anomalia_score DESC LIMIT 5",
}
# The shipped Carteira do Dia downloads the demo imports: B3's files as downloaded (the altered IDIV and SMLL copies
# are importable with --allow-altered; b3_dagster/recordings/b3_indices/SOURCES.md).
DEMO_INDEX_CSVS = ("IBRA", "IBXX")


def _demo_index_closes(runs: _DemoRuns, store, recordings_root: Path) -> None:
    from b3_dagster.defs.resources import B3IndicesResource
    from b3_dagster.replay.b3_indices import IndicesReplay

    print("\n5. B3's official IBOV closes (year grids replayed, Evolução downloads) -> b3_refined_db.index_closes")
    with IndicesReplay() as replay:
        for year, language in _best_ibov_grids():
            grids = {"b3_indices": B3IndicesResource(base_url=replay.base_url, language=language)}
            runs.run("index_history_job", grids, partition_key=f"{year}|IBOV")
    history = recordings_root / "b3_index_history"
    # the "Evolução Mensal" downloads (IBOV and IFIX, 2014-2025) too: index_closes_job's check monthly_matches_daily
    # then compares IBOV's months with the daily closes of 2021 and 2022
    downloads = [*sorted((history / "csv_evolucao_diaria").glob("*.csv")),
                 *sorted((history / "csv_evolucao_mensal").glob("*.csv"))]
    # two downloads of 2021 (to April, then to August): the longer replaces the shorter, which is archived. The
    # summary line says so; the storage's own warning about it would only repeat it on stderr
    raw_writes_log = logging.getLogger("b3_dagster.storage.raw_writes")
    level = raw_writes_log.level
    raw_writes_log.setLevel(logging.ERROR)
    try:
        statuses = [_import_history_file(store, path)[0] for path in downloads]
    finally:
        raw_writes_log.setLevel(level)
    print(f"  {len(statuses)} Evolução Diária / Mensal downloads: {_summarise_statuses(statuses)} -> raw/index_history/"
          + (" (a longer download of the same year replaced a shorter one, kept under archive/)"
             if "replaced" in statuses else ""))
    runs.run("index_closes_job")


def _best_ibov_grids() -> list[tuple[int, str]]:
    """(year, language) of the recorded IBOV year grid with the most closes, per year (2022: the en-us grid recorded
    in 2025 has the whole year)."""
    from b3_dagster.sources.b3_index_history import recorded_grids

    best: dict[int, tuple[str, int]] = {}
    for grid in recorded_grids():
        if grid.index == "IBOV" and len(grid.parse().closes) > best.get(grid.year, (None, -1))[1]:
            best[grid.year] = (grid.language, len(grid.parse().closes))
    return [(year, language) for year, (language, _) in sorted(best.items())]


def _demo_index_portfolios(runs: _DemoRuns, store) -> None:
    from b3_dagster.defs.resources import B3PortfolioResource
    from b3_dagster.replay.b3_api import B3Replay, recorded_days
    from b3_dagster.sources.b3_index_csv import recorded_csvs

    print("\n6. Every index's portfolio (GetPortfolioDay replayed for IBOV, Carteira do Dia downloads of "
          + ", ".join(DEMO_INDEX_CSVS) + ") -> b3_refined_db.index_portfolios")
    for recording in recorded_days():
        with B3Replay(recording) as replay:
            runs.run("index_portfolio_raw_job", {"b3": B3PortfolioResource(base_url=replay.base_url,
                                                                          language=recording.language)},
                     partition_key=f"{recording.date}|{recording.index}")
    statuses = [_import_portfolio_file(store, path, allow_altered=False)[0]
                for path in recorded_csvs() if path.name[:4] in DEMO_INDEX_CSVS]
    print(f"  {len(statuses)} Carteira do Dia downloads: {_summarise_statuses(statuses)} -> raw/index_portfolio/")
    runs.run("index_portfolios_job")


def _demo_index_membership(runs: _DemoRuns) -> None:
    from b3_dagster.defs.resources import B3IndicesResource
    from b3_dagster.replay.b3_indices import IndicesReplay
    from b3_dagster.sources.b3_stock_index import recorded_answers

    print("\n7. Index membership (GetStockIndex replayed per day) -> b3_refined_db.index_membership")
    with IndicesReplay() as replay:
        b3_indices = {"b3_indices": B3IndicesResource(base_url=replay.base_url)}
        for day, path in sorted(recorded_answers().items()):
            replay.current = path
            runs.run("index_membership_job", b3_indices, partition_key=day)
    runs.run("index_membership_table_job")


def _demo_anomalies(runs: _DemoRuns) -> None:
    print("\n8. Anomaly score of the IBOVESPA days (IsolationForest) -> b3_refined_db.ibov_anomalies, chart")
    runs.run("ibov_anomaly_job")


def _indices_store():
    from b3_dagster.storage.b3_indices_store import B3IndicesStore
    from b3_dagster.storage.lakes import lake_from_uri

    return B3IndicesStore(lake_from_uri(os.environ["B3_LAKE_ROOT"]))


def _import_history_file(store, path: Path) -> tuple[str, str]:
    """An "Evolução Diária" or "Evolução Mensal" download (told apart by its header) into raw: (status, line)."""
    written, held = store.write_history_csv(path.read_bytes(), str(path))
    return written.status, f"{written.status:<9} {path.name}: {held} -> {written.uri}"


def _import_portfolio_file(store, path: Path, allow_altered: bool) -> tuple[str, str]:
    """A "Carteira do Dia" download into raw: (status, line)."""
    written, parsed = store.write_portfolio_csv(path.read_bytes(), str(path), allow_altered=allow_altered)
    return written.status, (f"{written.status:<9} {path.name}: {parsed.index} {parsed.portfolio_date}, "
                            f"{len(parsed.rows)} tickers -> {written.uri}")


def _import_each(command: str, files: list[Path], one) -> int:
    """Import every file with ``one(path) -> (status, line)``, printing each line; a bad one is named on stderr and
    the others still go in (exit 1 if any failed)."""
    failed = 0
    for path in files:
        try:
            print(one(path)[1])
        except (B3DagsterError, ValueError, OSError) as error:
            failed += 1
            print(f"b3-dagster {command}: {' '.join(str(error).split())}", file=sys.stderr)
    if not failed:
        print("Then materialise the table: b3-dagster demo does it, or the job in the UI "
              + ("(index_closes_job)" if command == "import-index-history" else "(index_portfolios_job)"))
    return 1 if failed else 0


def import_index_history(args: argparse.Namespace) -> int:
    _apply_defaults(args.lake)
    store = _indices_store()
    return _import_each("import-index-history", args.files,
                        lambda path: _import_history_file(store, path))


def import_index_csv(args: argparse.Namespace) -> int:
    _apply_defaults(args.lake)
    store = _indices_store()
    return _import_each("import-index-csv", args.files,
                        lambda path: _import_portfolio_file(store, path, args.allow_altered))


def import_csv(args: argparse.Namespace) -> int:
    from b3_dagster.storage.history_import import exit_code, format_outcome, import_files

    _apply_defaults(args.lake)
    home = _dagster_home()  # a bad one stops here, before any file is imported
    store = _store()
    outcomes = import_files(args.files, store, allow_overwrite=args.allow_overwrite,
                            sector_source=args.sector_source)
    for outcome in outcomes:
        print(format_outcome(outcome))
        if outcome.conflict:
            print(f"          to replace it on purpose: b3-dagster import-csv --allow-overwrite {outcome.path} "
                  "(the stored file is archived, not deleted)")
    if home:
        _local_instance_home()
        with _instance() as instance:
            recorded = record_imports(instance, store, outcomes)
        print(f"{recorded} day(s) recorded in the Dagster instance at {home}")
    else:
        print("DAGSTER_HOME is not set: the imported days are not recorded in a Dagster instance "
              "(raw_partition_sensor will record them when it finds them)")
    return exit_code(outcomes)


def _sector_source(text: str):
    """argparse type of --sector-source: a bad value is one line of usage error, not a traceback."""
    from b3_dagster.storage.history_import import check_sector_source

    try:
        return check_sector_source(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _fail(command: str, error: BaseException) -> int:
    """One clear line on stderr and a non-zero exit: no traceback for a user's mistake."""
    message = " ".join(str(error).split()) or type(error).__name__
    print(f"b3-dagster {command}: {message}", file=sys.stderr)
    return 2


def query(args: argparse.Namespace) -> int:
    """User SQL runs with DuckDB's external access locked off: it can read the tables, not files or the network."""
    _apply_defaults(args.lake)
    import duckdb

    import b3_dagster
    from b3_dagster.storage.tables import run_query
    from b3_dagster.errors import TableError

    notes: list[str] = []
    try:
        connection = b3_dagster.connect(os.environ["B3_LAKE_ROOT"], args.as_of, catalog=os.environ["B3_CATALOG"],
                                        external_access=False, notes=notes)
        frame = run_query(connection, args.sql)
    except (TableError, duckdb.Error, ValueError, OSError) as error:
        return _fail("query", error)
    for note in notes:  # only about the tables the query names: the name as a whole word (ibov_refined is not the
        name = note.split(" ", 1)[0].split(".")[-1]  # end of tb_ibov_refined)
        if re.search(rf"(?<![\w$]){re.escape(name)}(?![\w$])", args.sql, re.IGNORECASE):
            print(f"b3-dagster query: note: {note}", file=sys.stderr)
    print(frame.to_string(index=False, max_rows=args.max_rows))
    return 0


def snapshots(args: argparse.Namespace) -> int:
    _apply_defaults(args.lake)
    from b3_dagster.storage.tables import TABLE_DEFS

    tables = _tables()
    for table_def in TABLE_DEFS:
        print(f"{table_def.qualified_name}:")
        for snapshot in tables.snapshots(table_def)[-args.last:]:
            keys = snapshot["keys"] or ""
            print(f"  {snapshot['snapshot_id']}  {snapshot['committed_at']:%Y-%m-%dT%H:%M:%S.%fZ}  "
                  f"{snapshot['operation']:<9} {keys[:70]}")
    return 0


def rebuild_tables(args: argparse.Namespace) -> int:
    """Raw is the system of record: recompute the portfolio, official-closes and index tables from it, each in one
    commit."""
    _apply_defaults(args.lake)
    from b3_dagster.storage.rebuild import (
        rebuild_index_closes_table,
        rebuild_index_table,
        rebuild_portfolio_table,
        retired_artefacts,
    )

    tables = _tables()
    processing_date = dt.date.fromisoformat(args.processing_date) if args.processing_date else None
    from b3_dagster.errors import UnplacedSectors

    try:
        # index_closes before ibov_refined: the latter's fechamento_oficial_b3 is B3's official close (from raw)
        outcomes = (rebuild_portfolio_table(tables, processing_date), rebuild_index_closes_table(tables),
                    rebuild_index_table(tables))
    except UnplacedSectors as error:  # nothing committed: name the tickers, no traceback
        return _fail("rebuild-tables", error)
    for outcome in outcomes:
        if outcome is None:
            continue
        print(f"{outcome.table}: {len(outcome.keys)} partition(s), {outcome.rows} rows committed as snapshot "
              f"{outcome.snapshot_id}")
    old = retired_artefacts(tables.lake)
    if old and args.delete_old:
        tables.lake.delete(old)
        print(f"deleted {len(old)} file(s) of the old layout (refined/, catalog.duckdb)")
    elif old:
        print(f"{len(old)} file(s) of the old layout (refined/, catalog.duckdb) are no longer read; "
              "delete them with --delete-old")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="b3-dagster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lake", help="lake root (default: $B3_LAKE_ROOT or ./data)")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_import_commands(commands)
    _add_table_commands(commands)
    return parser


def _add_import_commands(commands) -> None:
    """demo and the import-* commands: what writes raw."""
    run_demo = commands.add_parser("demo", help="run the whole pipeline on recorded real days (offline)")
    run_demo.add_argument("--index-from", default="2025-01-02", help="first session of index history to load")
    run_demo.add_argument("--index-to", default="2026-03-12", help="last session of index history to load")
    run_demo.add_argument("--steps", choices=[INDEX_STEPS], help=argparse.SUPPRESS)  # the demo's second process
    run_demo.set_defaults(handler=demo)

    run_import = commands.add_parser("import-csv", help="import B3 IBOVDia CSV files into raw partitions")
    run_import.add_argument("files", nargs="+", type=Path)
    run_import.add_argument("--allow-overwrite", action="store_true",
                            help="replace a raw partition holding different data (the old file is archived)")
    run_import.add_argument("--sector-source", default="classification", type=_sector_source,
                            help="classification (default: B3's Classificação Setorial valid on the file's date, "
                                 "then B3-published snapshots), nearest-snapshot, none, or YYYY-MM-DD of a raw "
                                 "partition")
    run_import.set_defaults(handler=import_csv)

    run_history = commands.add_parser("import-index-history",
                                      help="import B3's Evolução Diária and Evolução Mensal downloads (official "
                                           "index closes) into raw")
    run_history.add_argument("files", nargs="+", type=Path)
    run_history.set_defaults(handler=import_index_history)

    run_index_csv = commands.add_parser("import-index-csv",
                                        help="import B3's Carteira do Dia downloads of any index into raw")
    run_index_csv.add_argument("files", nargs="+", type=Path)
    run_index_csv.add_argument("--allow-altered", action="store_true",
                               help="accept a re-saved copy that departs from B3's format (alterations recorded)")
    run_index_csv.set_defaults(handler=import_index_csv)


def _add_table_commands(commands) -> None:
    """query, snapshots and rebuild-tables: what reads or rebuilds the Iceberg tables."""
    run_query = commands.add_parser("query", help="run Athena-style SQL on the Iceberg tables")
    run_query.add_argument("sql")
    run_query.add_argument("--as-of", help="a snapshot id, or an ISO timestamp (UTC unless it has an offset): "
                                           "answer as the tables were then")
    run_query.add_argument("--max-rows", type=int, default=60)
    run_query.set_defaults(handler=query)

    run_snapshots = commands.add_parser("snapshots", help="list each table's snapshots (for query --as-of)")
    run_snapshots.add_argument("--last", type=int, default=20)
    run_snapshots.set_defaults(handler=snapshots)

    run_rebuild = commands.add_parser("rebuild-tables", help="rebuild the Iceberg tables from raw (one commit each)")
    run_rebuild.add_argument("--processing-date", help="YYYY-MM-DD for data_processamento (default: today, "
                                                       "America/Sao_Paulo)")
    run_rebuild.add_argument("--delete-old", action="store_true",
                             help="delete the old layout's refined/ folders and catalog.duckdb")
    run_rebuild.set_defaults(handler=rebuild_tables)


def _is_ctrl_c(error: BaseException | None) -> bool:
    """Ctrl-C as Python raises it, or as a Dagster run raises it in its place (never imports Dagster for a query)."""
    errors = sys.modules.get("dagster._core.errors")
    interrupted = getattr(errors, "DagsterExecutionInterruptedError", None)
    return isinstance(error, KeyboardInterrupt) or (interrupted is not None and isinstance(error, interrupted))


def _one_line_for_a_ctrl_c() -> None:
    """A Ctrl-C is reported once, by main() ("interrupted"). Two places would otherwise print its traceback first,
    when it lands at an unlucky moment (seen in random Ctrl-Cs during the demo):
    - SQLAlchemy's pool, closing a connection (Dagster's SQLite instance opens and closes one per event), logs
      "Exception closing connection" with the traceback, then re-raises the interrupt;
    - Python prints "Exception ignored in ..." for an interrupt raised inside a finalizer or weakref callback
      (Dagster's run turns SIGINT into an exception wherever its handler runs), and goes on.
    The pool's other errors, and other exceptions that Python ignores, are printed as before."""
    pool_log = logging.getLogger("sqlalchemy.pool")
    handler = logging.StreamHandler()  # message and traceback on stderr, as Python's last-resort handler printed
    handler.setLevel(logging.WARNING)
    handler.addFilter(lambda record: not (record.exc_info and _is_ctrl_c(record.exc_info[1])))
    pool_log.addHandler(handler)
    pool_log.propagate = False
    default_hook = sys.unraisablehook

    def unraisable(unraisable_error) -> None:
        if not _is_ctrl_c(unraisable_error.exc_value):
            default_hook(unraisable_error)

    sys.unraisablehook = unraisable


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.own_process = argv is None  # the console script or `python -m b3_dagster.cli`, not an in-process caller
    quiet_library_warnings()  # only library warnings meant for developers (library_warnings.py)
    if args.own_process:  # in-process callers (tests) keep their logging and hooks as they are
        _one_line_for_a_ctrl_c()
    try:
        return args.handler(args)
    except B3DagsterError as error:  # the project's errors explain themselves: one paragraph, no traceback
        print(f"b3-dagster {args.command}: {error.explain()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"b3-dagster {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        if args.own_process:
            # Python's last garbage collection at exit walks the million objects that Dagster, pandas and pyarrow
            # leave, to free memory the operating system takes back anyway: 1-2 s of every command's wall clock
            # (measured 2026-11-30). Frozen objects are left out of it; in-process callers (tests) keep theirs.
            gc.freeze()


if __name__ == "__main__":
    sys.exit(main())
