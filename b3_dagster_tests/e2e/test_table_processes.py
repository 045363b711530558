"""The Iceberg tables with real, separate processes: a notebook-like reader holds a connection open while a refine
commits; a writer is killed with SIGKILL mid-commit; two writers commit overlapping days at once."""

from __future__ import annotations

import datetime as dt
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time

import dagster as dg
import pytest
import pyarrow as pa

from b3_dagster.calendar import sessions
from b3_dagster.defs.resources import RefineEngineResource
from b3_dagster.defs.portfolio.assets import sector_refine_and_commit
from b3_dagster.defs.resources import CatalogResource, LakeResource
from b3_dagster.model import REFINED_SCHEMA
from b3_dagster.storage.lake import LocalLake
from b3_dagster.storage.portfolio_store import PortfolioStore
from b3_dagster.storage.tables import PORTFOLIO_TABLE_DEF, open_tables
from b3_dagster.transforms.sector_refine import refine_portfolio
from b3_dagster_tests.helpers import snapshot_of

YEAR = sessions("2025-01-01", "2025-12-31")

READER = textwrap.dedent("""
    import sys
    import b3_dagster
    from b3_dagster.storage.tables import run_query

    connection = b3_dagster.connect(sys.argv[1], catalog="sql")
    print("ready", flush=True)
    for line in sys.stdin:
        answer = run_query(connection, "SELECT COUNT(*) AS n, COUNT(DISTINCT Data) AS days "
                                       "FROM default.tb_ibov_refined")
        print(int(answer["n"][0]), int(answer["days"][0]), flush=True)
""")

# Commits the days first..last `commits` times, each time with the marker `marker + number` in soma_part, allowing the
# commit `retries` replays; says when a commit starts. With "pause", its first commit stops once, between its data files
# and the catalog's pointer, and says which snapshot it was built on, until told to go on (or killed): the moment a kill
# matters most, and the barrier that makes two writers race from one snapshot.
WRITER = textwrap.dedent("""
    import sys
    import pyarrow as pa
    from b3_dagster.calendar import sessions
    from b3_dagster.model import REFINED_SCHEMA
    from b3_dagster.storage.lake import LocalLake
    from b3_dagster.storage.tables import PORTFOLIO_TABLE_DEF, TableCommitConflict, open_tables

    lake, first, last, marker, commits, retries = sys.argv[1:7]
    if sys.argv[7:] == ["pause"]:
        from pyiceberg.table import Transaction

        commit_transaction = Transaction.commit_transaction

        def paused(self):
            Transaction.commit_transaction = commit_transaction  # only once: replays and later commits run freely
            print("files written on", self._table.metadata.current_snapshot_id, flush=True)
            sys.stdin.readline()
            return commit_transaction(self)

        Transaction.commit_transaction = paused
    days = sessions(first, last)
    tables = open_tables(LocalLake(lake), commit_retries=int(retries))
    sys.stdin.readline()  # start together
    for number in range(int(commits)):
        rows = pa.Table.from_pylist(
            [{"Setor": f"Setor {s:02d}", "Data": day, "soma_part": float(marker) + number, "total_codigo": 3,
              "soma_qtd_teorica": 10, "data_processamento": day, "dias_desde_carteira": 0}
             for day in days for s in range(30)], schema=REFINED_SCHEMA)
        print("committing", number, flush=True)
        try:
            outcome = tables.commit(PORTFOLIO_TABLE_DEF, rows, [d.isoformat() for d in days])
            print("ok", float(marker) + number, outcome.snapshot_id, outcome.attempts, flush=True)
        except TableCommitConflict as error:
            print("conflict", float(marker) + number, str(error).replace(chr(10), " "), flush=True)
""")


LINE_TIMEOUT = 120  # seconds for one line of a child; generous for a loaded machine, finite for a stuck child


class Child:
    """A helper process of these tests, read line by line with a deadline: a child that hangs or dies fails the test
    with its stderr instead of hanging the suite (a bare ``readline()`` waits for ever, and at the end of the output
    returns "" for ever). Start children with the ``children`` fixture, which stops any still running when the test
    ends, failed or not."""

    def __init__(self, code: str, *args):
        self.process = subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self._lines: queue.Queue = queue.Queue()
        self._stderr: list[str] = []
        self._readers = [threading.Thread(target=self._pump_stdout, daemon=True),
                         threading.Thread(target=lambda: self._stderr.extend(self.process.stderr), daemon=True)]
        for reader in self._readers:
            reader.start()

    def _pump_stdout(self) -> None:
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)  # the end of its output

    def _failed(self, what: str) -> AssertionError:
        return AssertionError(f"{what}; the child's stderr: {self.stop()}")

    def send(self, line: str) -> None:
        try:
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            raise self._failed(f"the child ended (exit {self.process.poll()}) before it read {line!r}") from None

    def line(self) -> str:
        line = self.line_or_end()
        if line is None:
            raise self._failed("the child ended before the line the test waits for")
        return line

    def expect(self, start: str) -> str:
        """The next line, which must start with ``start``."""
        line = self.line()
        if not line.startswith(start):
            raise self._failed(f"expected a line starting with {start!r}, got {line!r}")
        return line

    def finish(self, timeout: float) -> list[str]:
        """Wait for the child to exit (closing its stdin), then its remaining lines; fails with its stderr when it
        does not exit in time or exits with an error."""
        self.process.stdin.close()
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise self._failed(f"the child did not exit in {timeout} s") from None
        if code != 0:
            raise self._failed(f"the child exited with {code}")
        lines = []
        while (line := self.line_or_end()) is not None:
            lines.append(line)
        return lines

    def line_or_end(self) -> str | None:
        """The next line, or None at the end of the output; fails when nothing comes within the deadline (a stuck
        child, or something it started that still holds its stdout open)."""
        try:
            return self._lines.get(timeout=LINE_TIMEOUT)
        except queue.Empty:
            raise self._failed(f"the child wrote no line in {LINE_TIMEOUT} s") from None

    def kill(self) -> int:
        self.process.send_signal(signal.SIGKILL)
        return self.process.wait(timeout=30)

    def stop(self) -> str:
        """Kill the child if it still runs; its whole stderr."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
        for reader in self._readers:
            reader.join(timeout=5)
        return "".join(self._stderr)


@pytest.fixture
def children():
    """``children(code, *args)`` starts a ``Child``; every child still running when the test ends is killed (a
    failed assertion would otherwise leave writers waiting on their stdin until pytest exits)."""
    started: list[Child] = []

    def start(code: str, *args) -> Child:
        started.append(Child(code, *args))
        return started[-1]

    yield start
    for child in started:
        child.stop()


def synthetic(days, marker: float) -> pa.Table:
    return pa.Table.from_pylist(
        [{"Setor": f"Setor {s:02d}", "Data": day, "soma_part": marker, "total_codigo": 3, "soma_qtd_teorica": 10,
          "data_processamento": day, "dias_desde_carteira": 0} for day in days for s in range(30)],
        schema=REFINED_SCHEMA)


def markers_by_day(lake_root) -> dict[dt.date, set[float]]:
    rows = open_tables(LocalLake(lake_root)).scan(PORTFOLIO_TABLE_DEF).to_pandas(date_as_object=True)
    return {day: set(group["soma_part"]) for day, group in rows.groupby("Data")}


def test_a_reader_in_another_process_keeps_answering_while_a_refine_commits(lake_root, recordings, children):
    store = PortfolioStore(LocalLake(lake_root))
    december = snapshot_of(recordings["2022-12-08"])
    open_tables(store.lake).commit(PORTFOLIO_TABLE_DEF, pa.Table.from_pandas(
        refine_portfolio(december.rows, dt.date(2025, 6, 1))), ["2022-12-08"])
    april = snapshot_of(recordings["2025-04-07"])
    store.write_raw(april)

    reader = children(READER, lake_root)
    reader.expect("ready")
    reader.send("ask")
    before = reader.line().split()
    lake = LakeResource(root=str(lake_root))
    result = dg.materialize([sector_refine_and_commit], partition_key="2025-04-07",
                            resources={"lake": lake, "catalog": CatalogResource(lake=lake),
                                       "refine_engine": RefineEngineResource()},
                            run_config={"ops": {"ibov_sector_refined": {"config": {
                                "processing_date": "2025-06-02"}}}})
    assert result.success, "the refine commits while the reader holds its connection"
    reader.send("ask")
    after = reader.line().split()
    assert before == after == [str(december.rows["segment"].nunique()), "1"], \
        "the open connection keeps answering from the snapshot it opened"
    assert reader.process.poll() is None
    assert reader.finish(timeout=30) == []
    assert set(markers_by_day(lake_root)) == {dt.date(2022, 12, 8), dt.date(2025, 4, 7)}, "a new connection sees it"


def test_sigkill_mid_commit_leaves_the_last_committed_snapshot_and_maintenance_removes_the_litter(lake_root,
                                                                                                  children):
    tables = open_tables(LocalLake(lake_root))
    tables.commit(PORTFOLIO_TABLE_DEF, synthetic(YEAR, 0.0), [d.isoformat() for d in YEAR])
    orphans_seen: set[str] = set()
    for delay in (0.05, 0.2, 0.4, 0.7):
        writer = children(WRITER, lake_root, YEAR[0], YEAR[-1], 1000 * delay, 50, 3)
        writer.send("go")
        writer.expect("committing")
        while not writer.line().startswith("committing"):  # let one commit through, kill the next
            pass
        time.sleep(delay)
        assert writer.kill() == -signal.SIGKILL
        # readers see one whole commit: every day of the year, 30 rows each, all written by the same commit
        by_day = markers_by_day(lake_root)
        assert list(by_day) == YEAR
        assert len(set().union(*by_day.values())) == 1, "a kill never leaves a mix of two commits"
        live = tables.load(PORTFOLIO_TABLE_DEF)
        referenced = {tables.key_of_uri(uri) for uri in tables.referenced_files(live)}
        orphans_seen |= {i.key for i in tables.lake.list("warehouse/") if i.key not in referenced}

    # and one kill at the moment that matters most, whatever the machine's load: the commit's data and manifest files
    # are written, the catalog does not point at them yet
    writer = children(WRITER, lake_root, YEAR[0], YEAR[-1], 5000, 1, 3, "pause")
    writer.send("go")
    writer.expect("committing")
    writer.expect("files written")
    assert writer.kill() == -signal.SIGKILL
    by_day = markers_by_day(lake_root)
    assert list(by_day) == YEAR and len(set().union(*by_day.values())) == 1 and 5000.0 not in by_day[YEAR[0]]
    live = tables.load(PORTFOLIO_TABLE_DEF)
    referenced = {tables.key_of_uri(uri) for uri in tables.referenced_files(live)}
    orphans_seen |= {i.key for i in tables.lake.list("warehouse/") if i.key not in referenced}

    outcome = tables.maintain(PORTFOLIO_TABLE_DEF, snapshot_retention=dt.timedelta(days=30),
                              orphan_grace=dt.timedelta(0))
    live = tables.load(PORTFOLIO_TABLE_DEF)
    referenced = {tables.key_of_uri(uri) for uri in tables.referenced_files(live)}
    assert [i.key for i in tables.lake.list("warehouse/") if i.key not in referenced] == []
    assert orphans_seen and orphans_seen <= set(outcome.removed_files), \
        "the kills left files behind that no snapshot lists, and maintenance removed them"
    assert outcome.expired_snapshots == 0 and len(markers_by_day(lake_root)) == len(YEAR)


def test_two_processes_committing_overlapping_days_end_serialised_or_fail_clearly(lake_root, children):
    tables = open_tables(LocalLake(lake_root))
    seed = tables.commit(PORTFOLIO_TABLE_DEF, synthetic(YEAR, 0.0), [d.isoformat() for d in YEAR])
    first, second = YEAR[:150], YEAR[100:]  # 50 days in common
    writers = [children(WRITER, lake_root, first[0], first[-1], 100, 4, 3, "pause"),
               children(WRITER, lake_root, second[0], second[-1], 200, 4, 3, "pause")]
    for writer in writers:
        writer.send("go")
    # A barrier, whatever the machine's load: each first commit stops with its files written on the snapshot it
    # loaded, before the catalog's pointer moves; both are released only once both stand there, so whichever moves
    # the pointer second meets a commit it did not see.
    bases = []
    for writer in writers:
        writer.expect("committing")
        paused = writer.expect("files written on").split()
        bases.append(int(paused[3]))
    assert bases == [seed.snapshot_id] * 2, "both writers built their first commit on the same snapshot"
    for writer in writers:
        writer.send("go")
    outputs = []
    for writer in writers:
        outputs.append([line.split() for line in writer.finish(timeout=240) if not line.startswith("committing")])
    for lines in outputs:
        assert lines and all(line[0] in ("ok", "conflict") for line in lines), lines
    committed = {float(line[1]) for lines in outputs for line in lines if line[0] == "ok"}
    assert any(line[0] == "conflict" or int(line[3]) > 1 for lines in outputs for line in lines), \
        "the two writers really raced (a commit was replayed or refused)"

    by_day = markers_by_day(lake_root)
    assert list(by_day) == YEAR and all(len(markers) == 1 for markers in by_day.values())
    overlap = {next(iter(by_day[day])) for day in YEAR[100:150]}
    assert len(overlap) == 1, "the common days all come from one commit: serialised, never a mix"
    assert overlap <= committed, "and that commit reported success"
    assert {next(iter(by_day[d])) for d in YEAR[:100]} <= {m for m in committed if m < 200}
    assert {next(iter(by_day[d])) for d in YEAR[150:]} <= {m for m in committed if m >= 200}
    history = tables.load(PORTFOLIO_TABLE_DEF).snapshots()
    assert all(later.parent_snapshot_id == earlier.snapshot_id for earlier, later in zip(history, history[1:])), \
        "one linear history: each commit sits on the one before"
    assert len(history) == 1 + len([1 for lines in outputs for line in lines if line[0] == "ok"])
