"""Benchmark: `b3-dagster demo` on a fresh lake and DAGSTER_HOME, run as a user runs it (a subprocess), timed as a
whole and per Dagster job (from the runs' start and end times in the instance), beside earlier measurements.

    .venv/bin/python benchmarks/demo.py            # one demo, in a temporary folder
    .venv/bin/python benchmarks/demo.py --keep DIR # ... in DIR (kept: open it with `dg dev` afterwards)

Prints wall-clock seconds per job (summed over its runs) and for the whole command, and the CPU seconds of the
command (user+sys of both of its processes). On a shared machine the wall clock also measures the other processes:
compare runs made one right after the other. Nothing is asserted (speed lives here, not in the tests).

Where the time goes (py-spy over both processes, 2026-12-01 04:40): Dagster's bookkeeping of each event and run on
its SQLite instance (step 4's one run writes a materialisation per session: 298), Python's imports and the
definitions' load (about 3.5 s per process, side by side), and step 8's forest (scikit-learn's import, two fits).
History: the serial demo went from 96 s of CPU (14:24) to 29-38 s (20:00-21:00) through one planned event per asset
(DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS), the refine and its commit in one step, defs/ loaded once and
replay servers that stop in 20 ms. Since 21:30 the index pipeline's steps 4-8 run in a second process beside the
portfolio's steps 1-3 (b3_dagster/cli.py, _IndexStepsBeside): 31-32 s wall, 42-50 s CPU (a second process
imports everything again). Since 21:45 each process of a command freezes the garbage collector's objects before
exiting (b3_dagster/cli.py, main), so Python's last collection skips them: 23-31 s wall, 37-50 s CPU (the
machine's speed drifts by about 20 % within an hour: compare runs made side by side). Since 2026-12-01 00:00 step 9
(the charts) runs in the first process as soon as the instance records steps 4 and 5 as successful (it reads both
tables), beside steps 6-8, and each demo process keeps the garbage collector off while it imports and loads the
definitions, then freezes them: 19.5-24.8 s wall (median 23.2 s), 33-43 s CPU over
10 runs at 00:20-00:50 (load average 1.1-2.2), each alternating with f5a7f74 at 21.3-26.3 s (median 24.8 s).
Since 02:30 the command's own runs skip Dagster's compute log capture (b3_dagster/defs/shared/instance.py), which
started two `tail -F` and two Python watchers per run to mirror stdout/stderr into files that stayed empty:
17.5-20.0 s wall, 30-35 s CPU over 8 runs at 02:25-02:50 (load average 1.2-2.3); 4 of them alternated with runs that
kept the capture, at 19.0-22.4 s wall and 32.5-37.9 s CPU.
Since 04:40 the command's instance writes Dagster's rows without two more costs of its SQLite event log (the same
module): a planned check of a range run serialised once, not once per partition (4.6 s of the first process), and
one kept SQLite connection per file instead of an engine and a connection per use (each close also checkpointed the
WAL log); with the raw index files of step 4 cut from one Arrow table (b3_dagster/storage/bar_store.py):
14.8-20.5 s wall (median 17.7 s), 24-32 s CPU over 9 runs at 05:40-05:56 (load average 1.8-2.3); 2 of them
alternated with 99da0f8 (the code before): 15.8 / 19.6 s and 17.7 / 22.9 s wall, 25.4 / 34.3 s and 28.5 / 38.3 s CPU.
Since 2026-12-01 07:35 a run's new SQLite file is a copy of an empty one that Dagster's own code made once per
process (alembic's check and stamp of each run's file took about 0.12 s of CPU, 2.2 s over the demo's 19 runs): 3
pairs alternating with 7ea9a2d at 07:33, new / before: 14.6-15.4 / 15.2-16.7 s wall, 23.8-25.0 / 24.4-26.6 s CPU.
Where each process's time goes: the timeline printed last (each run's creation, start and end, from the instance's
run records).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Wall-clock seconds per job of the serial demo at ef2c256, measured 2026-11-30 21:00 UTC (load average 1.4) with the
# earlier version of this script (in process, per step): 42.7 s wall, 38.2 s CPU in all. That CPU figure was measured
# inside the process, so it leaves out Python's start and exit, which the command's CPU below includes.
SERIAL_WALL = {
    "ibov_snapshot_job": 2.0, "ibov_refine_job": 10.2, "b3_sectors_job": 1.7, "ibov_index_job": 6.0,
    "ibov_index_refine_job": 2.4, "ibov_charts_job": 1.7, "index_history_job": 1.2, "index_closes_job": 0.9,
    "index_portfolio_raw_job": 0.6, "index_portfolios_job": 0.4, "index_membership_job": 0.9,
    "index_membership_table_job": 0.5, "ibov_anomaly_job": 3.8,
}
SERIAL_TOTAL_WALL, SERIAL_TOTAL_CPU = 42.7, 38.2
FIRST_BASELINE = "14:24 UTC, before any of the above: 162.6 s wall, 95.7 s CPU (load average 2.0-3.4)"


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_records(home: Path) -> list:
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        return sorted(instance.get_run_records(), key=lambda record: record.create_timestamp)


def run_walls(records) -> dict[str, float]:
    """Seconds from creation (Dagster writes the planned events then) to end of each job's runs, summed, as the
    demo's Dagster instance recorded them."""
    walls: dict[str, float] = defaultdict(float)
    for record in records:
        if record.end_time:
            walls[record.dagster_run.job_name] += record.end_time - record.create_timestamp.timestamp()
    return walls


def timeline(records, started: float) -> list[str]:
    """Each run's creation, start and end, in seconds since the command started: which process waited for what."""
    return [f"{record.dagster_run.job_name:<28}{record.create_timestamp.timestamp() - started:>8.1f}"
            f"{(record.start_time or started) - started:>8.1f}{(record.end_time or started) - started:>8.1f}"
            for record in records]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, help="run in this (new) folder and keep it")
    args = parser.parse_args()
    root = (args.keep or Path(tempfile.mkdtemp(prefix="b3-demo-bench-"))).resolve()
    (root / "home").mkdir(parents=True, exist_ok=True)
    env = {name: value for name, value in os.environ.items() if not name.startswith(("B3_", "DAGSTER_"))}
    env["DAGSTER_HOME"] = str(root / "home")  # a new user's environment, as scripts/run_local.sh sets it

    wall, cpu, started = time.perf_counter(), children_cpu(), time.time()
    done = subprocess.run([str(REPO / ".venv" / "bin" / "b3-dagster"), "--lake", str(root / "data"), "demo"],
                          cwd=root, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - wall, children_cpu() - cpu
    if done.returncode != 0:
        print(done.stdout[-3000:] + done.stderr[-3000:])
    records = run_records(root / "home")
    walls = run_walls(records)
    if not args.keep:
        shutil.rmtree(root)

    print(f"b3-dagster demo in {root}{'' if args.keep else ' (removed)'} (exit {done.returncode}); "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'job (wall s, its runs summed)':<32}{'now':>8}{'serial':>9}")
    for name in sorted(set(walls) | set(SERIAL_WALL), key=lambda n: -SERIAL_WALL.get(n, 0)):
        print(f"{name:<32}{walls.get(name, float('nan')):>8.1f}{SERIAL_WALL.get(name, float('nan')):>9.1f}")
    print(f"{'whole command, wall s':<32}{wall:>8.1f}{SERIAL_TOTAL_WALL:>9.1f}")
    print(f"{'whole command, CPU s':<32}{cpu:>8.1f}{SERIAL_TOTAL_CPU:>9.1f}")
    print(f"first baseline: {FIRST_BASELINE}")
    print(f"\n{'run (s since the command started)':<28}{'created':>8}{'started':>8}{'ended':>8}")
    print("\n".join(timeline(records, started)))
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
