"""The demo's second process (`b3-dagster demo` runs the index pipeline's steps beside the portfolio's): its output
comes after this process's, its go-ahead for step 7 arrives or is withheld, step 9 waits for its steps 4 and 5 only, a
failure on either side ends both. Real child processes: small Python scripts in the index steps' place (each test
well under a second; 2-5 s for those whose script runs Dagster jobs or loads the definitions), and the real demo
where the point is a signal to it (Ctrl-C, a SIGKILL of its first process; about 6 s each)."""

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.instance.ref import InstanceRef

from b3_dagster.cli import _IndexStepsBeside, _index_steps_command
from b3_dagster_tests.helpers import b3_dagster_command, new_user_environment, wait_for


def script(body: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(body)]


# the real second process's ear (_FirstProcess), with short sleeps in the place of its runs
SECOND = script("""
    import time
    from b3_dagster.cli import _FirstProcess
    from b3_dagster.errors import DemoStepsStopped

    first = _FirstProcess()
    print("4. index steps", flush=True)
    try:
        for step in ("5", "6"):
            time.sleep(0.2)
            first.check(f"step {step}")
            print(f"{step}. done", flush=True)
        first.wait_for_raw("step 7")
        print("7. compared with the raw portfolios", flush=True)
    except DemoStepsStopped as stopped:
        print(f"stopped: {stopped}")
        raise SystemExit(1)
""")


def test_its_output_follows_this_process_and_it_gets_the_go_ahead(capsys):
    with _IndexStepsBeside(SECOND) as beside:
        print("1. portfolio steps")
        beside.raw_portfolios_written()
        print("3. refine")
    printed = capsys.readouterr().out
    assert printed.splitlines() == ["1. portfolio steps", "3. refine", "4. index steps", "5. done", "6. done",
                                    "7. compared with the raw portfolios"]


def test_without_the_go_ahead_it_stops_and_this_process_reports_it(capsys):
    # this process returned before step 1 ended (e.g. a refused download): the second one must not compare the
    # membership with raw portfolios that were never written
    with pytest.raises(SystemExit, match=r"steps \(4-8\) failed \(exit 1\)"):
        with _IndexStepsBeside(SECOND):
            print("1. failed")
    printed = capsys.readouterr().out.splitlines()
    assert printed[:2] == ["1. failed", "4. index steps"]
    assert printed[-1] == "stopped: the first process stopped; step 5 not run", printed


def test_a_failure_here_stops_the_second_process_at_its_next_run_and_is_the_one_reported(capsys):
    # the user is not kept waiting for index steps after the portfolio's failed: the error comes at once
    with pytest.raises(SystemExit, match="refine failed"):
        with _IndexStepsBeside(SECOND) as beside:
            beside.raw_portfolios_written()
            raise SystemExit("refine failed")
    printed = capsys.readouterr().out.splitlines()
    assert printed == ["4. index steps", "stopped: the first process failed"], printed


def test_a_second_process_that_ended_early_does_not_break_the_go_ahead(capsys):
    with pytest.raises(SystemExit, match=r"failed \(exit 3\)"):
        with _IndexStepsBeside(script("import sys; print('4. index steps failed'); sys.exit(3)")) as beside:
            beside.process.wait()
            beside.raw_portfolios_written()  # its stdin is a broken pipe now
    assert capsys.readouterr().out == "4. index steps failed\n"


def test_its_output_reaches_a_terminal_that_is_not_utf8_as_it_was_written():
    # a Latin-1 terminal (PYTHONIOENCODING=latin-1, or a pt_BR.ISO-8859-1 locale): both processes write their
    # stdout in Latin-1, and the second one's "Evolução" (step 5's title) must not be read back as UTF-8 (it ended
    # the demo after step 3 with a UnicodeDecodeError, and steps 4-8's output was lost)
    child = [sys.executable, "-c", "print('5. Evolu\\u00e7\\u00e3o Di\\u00e1ria')"]
    parent = script(f"""
        from b3_dagster.cli import _IndexStepsBeside
        with _IndexStepsBeside({child!r}) as beside:
            print("3. Participa\\u00e7\\u00e3o")
            beside.raw_portfolios_written()
    """)
    done = subprocess.run(parent, capture_output=True, env={**os.environ, "PYTHONIOENCODING": "latin-1"}, timeout=120)
    assert done.returncode == 0 and done.stderr == b"", done.stderr.decode(errors="replace")
    assert done.stdout.decode("latin-1").splitlines() == ["3. Participação", "5. Evolução Diária"]


# the second process's runs of steps 4 and 5 (the jobs named after the instance's folder), in a shared instance: a
# one-op job of each name, executed in process and tagged as the demo's second process tags them
WRITES_TABLES = script("""
    import os
    import select
    import sys
    import time
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef
    from b3_dagster.cli import DEMO_FIRST_PROCESS_TAG

    @dg.op
    def write():
        pass

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(sys.argv[1])) as instance:
        for name in sys.argv[2:]:
            job = dg.GraphDefinition(name, node_defs=[write]).to_job()
            assert job.execute_in_process(instance=instance, tags={DEMO_FIRST_PROCESS_TAG: str(os.getppid())}).success
    print("4-5. written", flush=True)
    # steps 5-8: until the first process closes our stdin (at most 10 s). Its lines (the go-ahead for step 7) are
    # read past: waiting only for stdin to be readable would end at the go-ahead, which comes before step 9
    deadline = time.monotonic() + 10
    while select.select([sys.stdin], [], [], max(0, deadline - time.monotonic()))[0] and os.read(0, 4096):
        pass
""")


def test_step_9_waits_for_steps_4_and_5s_runs_and_not_for_the_whole_second_process(tmp_path, capsys):
    from b3_dagster.cli import CHART_INPUT_JOBS

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        since = dt.datetime.now(dt.timezone.utc)
        with _IndexStepsBeside([*WRITES_TABLES, str(tmp_path), *CHART_INPUT_JOBS]) as beside:
            beside.raw_portfolios_written()
            assert beside.wait_for_success(instance, CHART_INPUT_JOBS, since)
            assert beside.process.poll() is None, "it went on while the second process was still running"
            print("9. charts")
    assert capsys.readouterr().out.splitlines() == ["9. charts", "4-5. written"]


def test_step_9_waits_for_the_official_closes_too_not_only_for_step_4(tmp_path):
    # ibov_index_chart draws the close of record from b3_refined_db.index_closes (step 5's index_closes_job): run
    # before it, step 9 would draw Yahoo's closes on the sessions whose official close B3 published
    from b3_dagster.cli import CHART_INPUT_JOBS, INDEX_CLOSES_JOB, INDEX_TABLE_JOB

    assert INDEX_CLOSES_JOB in CHART_INPUT_JOBS
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        since = dt.datetime.now(dt.timezone.utc)
        with _IndexStepsBeside([*WRITES_TABLES, str(tmp_path), INDEX_TABLE_JOB]) as beside:
            beside.process.stdin.close()  # it ends after step 4's run
            assert not beside.wait_for_success(instance, CHART_INPUT_JOBS, since)
        assert instance.get_runs_count(dg.RunsFilter(job_name=INDEX_TABLE_JOB)) == 1


def test_the_jobs_step_9_waits_for_write_the_index_tables_its_charts_read():
    # a renamed job would never be seen: step 9 would then wait for the whole second process, without a word
    from b3_dagster import definitions
    from b3_dagster.cli import CHART_INPUT_JOBS
    from b3_dagster.model import INDEX_CLOSES_TABLE

    def written_by(job: str) -> set[str]:
        return {key.to_user_string() for key in definitions.defs.resolve_job_def(job).asset_layer.selected_asset_keys}

    charts = definitions.defs.resolve_job_def("ibov_charts_job").asset_layer
    read = {parent.to_user_string() for key in charts.selected_asset_keys
            for parent in charts.asset_graph.get(key).parent_keys}
    waited = set().union(*(written_by(job) for job in CHART_INPUT_JOBS))
    # the charts' declared parents: tb_ibov_refined (steps 1-3, this process), ibov_refined and index_closes
    assert read - written_by("ibov_refine_job") <= waited
    assert INDEX_CLOSES_TABLE in waited


def test_step_9_is_not_run_when_the_second_process_has_failed_after_steps_4_and_5(tmp_path):
    # the portfolio's steps 1-3 were the slower: the second process wrote both tables, then failed in step 7
    from b3_dagster.cli import CHART_INPUT_JOBS

    failing = [*WRITES_TABLES[:-1], WRITES_TABLES[-1] + "raise SystemExit(3)\n"]
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        since = dt.datetime.now(dt.timezone.utc)
        with pytest.raises(SystemExit, match=r"failed \(exit 3\)"):
            with _IndexStepsBeside([*failing, str(tmp_path), *CHART_INPUT_JOBS]) as beside:
                beside.process.stdin.close()
                beside.process.wait()
                assert not beside.wait_for_success(instance, CHART_INPUT_JOBS, since)
        assert instance.get_runs_count(dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS])) == 2


def test_step_9_does_not_wait_when_the_second_process_ended_without_steps_4_and_5(tmp_path):
    from b3_dagster.cli import CHART_INPUT_JOBS

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        # successful runs of an earlier demo in the same instance do not count
        earlier = subprocess.run([*WRITES_TABLES, str(tmp_path), *CHART_INPUT_JOBS], input="", capture_output=True,
                                 text=True, timeout=120)
        assert earlier.returncode == 0 and instance.get_runs_count(dg.RunsFilter(statuses=[
            dg.DagsterRunStatus.SUCCESS])) == len(CHART_INPUT_JOBS)
        since = dt.datetime.now(dt.timezone.utc)
        with pytest.raises(SystemExit, match=r"failed \(exit 3\)"):
            with _IndexStepsBeside(script("import sys; sys.exit(3)")) as beside:
                assert not beside.wait_for_success(instance, CHART_INPUT_JOBS, since)


def test_step_9_does_not_take_the_runs_of_another_demo_on_the_same_dagster_home(tmp_path):
    # another demo (another lake) or a job launched from the UI wrote steps 4 and 5 meanwhile; this demo's second
    # process has not got there yet (here: it ends without them)
    from b3_dagster.cli import CHART_INPUT_JOBS

    @dg.op
    def write():
        pass

    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        since = dt.datetime.now(dt.timezone.utc)
        for name in CHART_INPUT_JOBS:
            assert dg.GraphDefinition(name, node_defs=[write]).to_job().execute_in_process(instance=instance).success
        with _IndexStepsBeside(script("pass")) as beside:
            assert not beside.wait_for_success(instance, CHART_INPUT_JOBS, since)


def test_the_second_process_runs_this_package_not_a_b3_dagster_in_the_current_folder(tmp_path):
    # the user runs the installed `b3-dagster demo` from another checkout (or worktree) of the project: `python -m`
    # would put that folder first on sys.path and run its b3_dagster in the second process
    shadow = tmp_path / "b3_dagster"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("")
    (shadow / "cli.py").write_text("print('another b3_dagster')")
    command = _index_steps_command("2025-01-02", "2026-03-12")
    done = subprocess.run([*command[:command.index("demo")], "--help"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("usage: b3-dagster"), done.stdout + done.stderr


def test_the_two_processes_take_turns_creating_the_instance_on_a_fresh_dagster_home(tmp_path):
    # Dagster's SQLite storages create their tables and stamp their schema without a lock: both demo processes
    # creating a fresh DAGSTER_HOME at once failed ("table runs already exists", "UNIQUE constraint failed:
    # alembic_version.version_num"). Here this test holds the demo's lock while another process asks for the instance.
    import fcntl

    home = tmp_path / "home"
    home.mkdir()
    asking = subprocess.Popen(script("""
        import dagster
        from b3_dagster.cli import _demo_instance
        print("imported", flush=True)
        _demo_instance()
        print("created", flush=True)
    """), stdout=subprocess.PIPE, text=True, env={**os.environ, "DAGSTER_HOME": str(home)})
    folder = os.open(home, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        assert asking.stdout.readline() == "imported\n"
        with pytest.raises(subprocess.TimeoutExpired):
            asking.wait(timeout=2)  # without the lock, it creates the instance in about 1 s
        assert not (home / "history").exists(), "nothing created while the other process holds the lock"
    finally:
        os.close(folder)
    assert asking.wait(timeout=120) == 0 and asking.stdout.read() == "created\n"
    assert (home / "history" / "runs.db").exists()


# What a shell does for a foreground job: SIGINT at its default and not blocked, whatever the test process
# inherited or was left with by libraries it ran earlier (an ignored or blocked SIGINT is inherited through exec).
# Then it execs the demo, so the demo keeps this process's id and process group.
AS_A_TERMINAL_STARTS_IT = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                           "signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT}); "
                           "os.execv(sys.argv[1], sys.argv[1:])")


def sigint_state(pid: int) -> str:
    """Whether ``pid`` ignores or blocks SIGINT (bit 1 of /proc's masks): for a failure message."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = dict(line.split(":\t", 1) for line in lines if ":\t" in line)
    return ", ".join(f"{name} {int(fields[name], 16) >> (signal.SIGINT - 1) & 1}" for name in ("SigIgn", "SigBlk"))


def start_demo(tmp_path) -> subprocess.Popen:
    """The real `b3-dagster demo` in a session of its own (its two processes are that session's process group),
    printing unbuffered, so a test can act at a known step."""
    home = tmp_path / "home"
    home.mkdir()
    command = [*b3_dagster_command(), "--lake", str(tmp_path / "data"), "demo"]
    return subprocess.Popen([sys.executable, "-c", AS_A_TERMINAL_STARTS_IT, *command], cwd=tmp_path,
                            env={**new_user_environment(home), "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def read_until(process: subprocess.Popen, start: str) -> None:
    for line in process.stdout:
        if line.startswith(start):
            return
    pytest.fail(f"the demo ended before printing {start!r}: {process.stderr.read()[-3000:]}")


def group_ended(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return True
    return False


def kill_what_is_left(group: int) -> None:
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        pass


# Step 1's title comes as both processes start their first Dagster jobs; step 2's while the second one is inside
# ibov_index_job (about 4-11 s into the demo), where Dagster's run turns the Ctrl-C into a step failure and, at the
# console's earlier WARNING level, printed that step's and that run's failure with their stack traces.
@pytest.mark.parametrize("moment", ["1. B3 GetPortfolioDay", "2. Past portfolios"])
def test_ctrl_c_ends_both_processes_with_one_line_and_no_traceback(tmp_path, moment):
    demo = start_demo(tmp_path)
    try:
        read_until(demo, moment)
        state = f"the demo: {sigint_state(demo.pid)}; this test process: {sigint_state(os.getpid())}"
        os.killpg(demo.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends: the whole foreground group
        _, stderr = demo.communicate(timeout=180)
        assert demo.returncode != 0, f"the demo went on after Ctrl-C (SIGINT {state})"
        assert stderr == "b3-dagster demo: interrupted\n", stderr[-3000:]
        wait_for("every process of the demo to end", lambda: group_ended(demo.pid), timeout=60, interval=0.2)
    finally:
        kill_what_is_left(demo.pid)


def test_the_second_process_stops_by_itself_when_the_first_is_killed(tmp_path):
    demo = start_demo(tmp_path)
    try:
        read_until(demo, "1. B3 GetPortfolioDay")
        demo.kill()  # SIGKILL to the first process only: nothing of it can tell the second one
        demo.wait(timeout=60)
        wait_for("the second process to stop without the first", lambda: group_ended(demo.pid), timeout=180,
                 interval=0.2)
        # it stopped at its next run: step 5 comes about 7 s of work after the first process printed step 1's title
        with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path / "home"))) as instance:
            jobs = {record.dagster_run.job_name for record in instance.get_run_records()}
        assert "index_history_job" not in jobs, f"it went on to step 5 alone: {sorted(jobs)}"
    finally:
        kill_what_is_left(demo.pid)


def test_each_demo_process_turns_the_collector_back_on_once_the_definitions_are_loaded():
    # demo() turns Python's garbage collector off in its own process while it imports and loads the definitions;
    # _DemoRuns freezes what they loaded and turns it back on (else the whole demo would run without it)
    done = subprocess.run(script("""
        import gc
        from b3_dagster.cli import _DemoRuns

        gc.disable()
        _DemoRuns(own_process=True)
        print(gc.isenabled(), gc.get_freeze_count() > 100_000)
        frozen = gc.get_freeze_count()
        _DemoRuns()  # an in-process caller's: nothing more frozen
        print(gc.get_freeze_count() <= frozen)  # frozen objects that are freed leave the count
    """), capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["True", "True", "True"], done.stdout + done.stderr[-2000:]


def test_the_second_process_as_its_own_command_turns_the_collector_back_on(tmp_path):
    # the path itself: main() marks the console script's process as its own, demo() turns the collector off and
    # _demo_index_steps' _DemoRuns turns it back on. Its stdin is empty: it stops before its first run (no go-ahead)
    (tmp_path / "home").mkdir()
    done = subprocess.run(script("""
        import gc
        import sys
        from b3_dagster import cli

        sys.argv = ["b3-dagster", "--lake", sys.argv[1], "demo", "--steps", "index"]
        code = cli.main()
        print(code, gc.isenabled(), gc.get_freeze_count() > 100_000)
    """) + [str(tmp_path / "lake")], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
        env=new_user_environment(tmp_path / "home"))
    assert done.stdout.split()[-3:] == ["1", "True", "True"], done.stdout[-2000:] + done.stderr[-2000:]
    assert "The index steps stopped: the first process stopped; ibov_index_job not run." in done.stdout


def test_a_ctrl_c_that_a_run_captured_and_cleared_is_seen_after_the_run():
    # an in-process Dagster run turns SIGINT into a flag that it checks only on entering user code and clears when it
    # ends: a Ctrl-C during the run's last events was lost and the demo went on
    done = subprocess.run(script("""
        import os
        import signal
        from dagster._utils.interrupts import capture_interrupts
        from b3_dagster.cli import _CtrlCDuringRuns

        ctrl_c = _CtrlCDuringRuns()
        ctrl_c.raise_if_seen()  # none yet
        with capture_interrupts():  # what the run does around its execution
            os.kill(os.getpid(), signal.SIGINT)
        try:
            ctrl_c.raise_if_seen()
        except KeyboardInterrupt:
            print("seen after the run")
    """), capture_output=True, text=True, timeout=120)
    assert done.stdout == "seen after the run\n", done.stdout + done.stderr[-2000:]


def test_a_ctrl_c_at_an_unlucky_moment_prints_no_traceback_and_other_errors_still_print(tmp_path):
    # random Ctrl-Cs during the demo met two tracebacks before "interrupted" (one in a fresh-clone gate): SQLAlchemy's
    # pool logs "Exception closing connection" with the interrupt's traceback before re-raising it, and Python prints
    # "Exception ignored in ..." for an interrupt raised inside a weakref callback. A command's own process (main()
    # with argv None, here `snapshots`) drops those two, for Python's and for Dagster's form of the interrupt
    done = subprocess.run(script("""
        import logging
        import sys
        from dagster._core.errors import DagsterExecutionInterruptedError
        from b3_dagster import cli

        sys.argv = ["b3-dagster", "--lake", sys.argv[1], "snapshots"]
        cli.main()
        pool = logging.getLogger("sqlalchemy.pool.impl.NullPool")  # the logger SQLAlchemy's NullPool logs to

        class Finalised:
            def __init__(self, error):
                self.error = error

            def __del__(self):
                raise self.error

        for error in (KeyboardInterrupt(), DagsterExecutionInterruptedError(), OSError("disk I/O error")):
            try:
                raise error
            except BaseException:
                pool.error("Exception closing connection %r", "<sqlite3.Connection>", exc_info=True)
            Finalised(error)
    """) + [str(tmp_path / "lake")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Interrupt" not in done.stderr, done.stderr[-2000:]
    assert "Exception closing connection '<sqlite3.Connection>'" in done.stderr and done.stderr.count(
        "OSError: disk I/O error") == 2, "the pool's other errors, and Python's other ignored ones, still print"
