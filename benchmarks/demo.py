"""Benchmark: `b3-dagster demo` on a fresh lake and DAGSTER_HOME, timed step by step (each Dagster run, the import
recording, the whole command), beside the baseline measured on 2026-11-30.

    .venv/bin/python benchmarks/demo.py            # one demo in process, in a temporary folder
    .venv/bin/python benchmarks/demo.py --keep DIR # ... in DIR (kept: open it with `dg dev` afterwards)

Prints wall-clock and CPU seconds (this process: user+sys) per step. On a shared machine the wall clock mostly
measures the other processes: compare the CPU column. Nothing is asserted (speed lives here, not in the tests).

Where the time goes (measured with cProfile, 2026-11-30): Dagster's SQLite event log stores each event on its own
(new SQLAlchemy engine, commit, close, per run shard and again in index.db), about 10-20 ms of CPU plus fsyncs per
event; a run over a range of partitions writes a planned and a materialisation event per partition and asset. The
refine's one run over 2022-12-08..2026-03-24 covers 821 sessions (25 with raw) = 1,642 materialisations.
Since 2026-11-30 16:10 the demo writes one planned event per asset (DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS,
b3_dagster/cli.py): measured 56 s CPU (refine 27 s) against the baseline's 96 s (refine 59 s), at load average 2.
Since 2026-11-30 17:30 the refine and its table commit are one step that records a materialisation per day written
(defs/shared/tables.py, refine_and_commit_asset): 50 instead of 1,642. Measured 39 s CPU (refine 7 s) at load 2.6.
What is left of the refine is mostly Dagster's planned check evaluations: one row per partition and check, each
with the serialised event (821 sessions x 7 checks).
Since 2026-11-30 20:00 the demo loads defs/ once (it loaded it 14 times: 3 s of CPU), its replay servers stop in
20 ms (each stop waited ~0.4 s), and ibov_index_job records its own metadata per session. Measured 29-33 s CPU,
32-37 s wall at load 1 (the same machine gave 37-51 s wall for the commit before, minutes apart: compare runs made
side by side).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

# 2026-11-30 14:24 UTC, 2 cores shared with other work (load average 2.0-3.4): CPU seconds (user+sys of the demo
# process), before the demo's planned-events switch (`/usr/bin/time -v`: 82.4 s user + 16.7 s sys).
BASELINE_CPU = {
    "ibov_snapshot_job": 1.7, "record_imports": 2.6, "ibov_refine_job": 58.6, "b3_sectors_job": 1.1,
    "ibov_index_job": 9.3, "ibov_index_refine_job": 1.9, "ibov_charts_job": 1.7, "index_history_job": 0.7,
    "index_closes_job": 0.7, "index_portfolio_raw_job": 0.5, "index_portfolios_job": 0.5,
    "index_membership_job": 1.0, "index_membership_table_job": 0.6, "ibov_anomaly_job": 5.1, "TOTAL": 95.7,
}
BASELINE_WALL_TOTAL = 162.6  # the same run's wall clock, under that load (an earlier run at load 9-13: 443 s)


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, help="run in this (new) folder and keep it")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="b3-demo-bench-"))
    (root / "home").mkdir(parents=True, exist_ok=True)
    for name in [n for n in os.environ if n.startswith(("B3_", "DAGSTER_"))]:
        del os.environ[name]  # a new user's environment
    os.environ["DAGSTER_HOME"] = str(root / "home")

    started_wall, started_cpu = time.perf_counter(), cpu()
    import b3_dagster.cli as cli

    steps: dict[str, list[float]] = {}

    def timed(name_of, function):
        def wrapper(*args, **kwargs):
            wall, used = time.perf_counter(), cpu()
            try:
                return function(*args, **kwargs)
            finally:
                totals = steps.setdefault(name_of(args), [0.0, 0.0])
                totals[0] += time.perf_counter() - wall
                totals[1] += cpu() - used
        return wrapper

    cli.run_job = timed(lambda a: a[1], cli.run_job)
    cli.record_imports = timed(lambda a: "record_imports", cli.record_imports)
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        status = cli.main(["--lake", str(root / "data"), "demo"])
    steps["TOTAL"] = [time.perf_counter() - started_wall, cpu() - started_cpu]

    print(f"b3-dagster demo in {root} (exit {status}); load average {os.getloadavg()[0]:.1f}")
    print(f"{'step':<28}{'wall s':>9}{'CPU s':>9}{'baseline CPU s':>16}")
    for name, (wall, used) in steps.items():
        print(f"{name:<28}{wall:>9.1f}{used:>9.1f}{BASELINE_CPU.get(name, float('nan')):>16.1f}")
    print(f"baseline wall clock of the whole demo: {BASELINE_WALL_TOTAL} s (load average 2.0-3.4)")
    return status


if __name__ == "__main__":
    sys.exit(main())
