"""`b3-dagster query`, `snapshots` and `rebuild-tables` through the real CLI in a subprocess: time travel, and the
migration of a lake from before the Iceberg tables. The query's errors and its locked file access, which involve no
second process, are tested in process (b3_dagster_tests/test_cli_query.py)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

from b3_dagster.storage.lake import LocalLake
from b3_dagster.storage.portfolio_store import PortfolioStore
from b3_dagster_tests.helpers import snapshot_of


def cli(lake: Path, *args: str) -> subprocess.CompletedProcess:
    found = shutil.which("b3-dagster", path=str(Path(sys.executable).parent))
    command = [found] if found else [sys.executable, "-m", "b3_dagster.cli"]
    env = {name: value for name, value in os.environ.items() if not name.startswith("B3_")}
    return subprocess.run([*command, "--lake", str(lake), *args], capture_output=True, text=True, timeout=120,
                          env=env, cwd=lake.parent)


COUNT_DAYS = "SELECT COUNT(DISTINCT Data) AS days FROM default.tb_ibov_refined"


def test_query_answers_now_and_as_of_a_snapshot_or_a_timestamp(lake_root, two_commits):
    first, second = two_commits
    now = cli(lake_root, "query", COUNT_DAYS)
    assert now.stdout.split() == ["days", "2"]
    assert now.stderr == "", "a real process prints the answer only: no library warning, no note"
    assert cli(lake_root, "query", "--as-of", str(first.snapshot_id), COUNT_DAYS).stdout.split() == ["days", "1"]
    moment = (second.committed_at - dt.timedelta(milliseconds=1)).isoformat()
    assert cli(lake_root, "query", "--as-of", moment, COUNT_DAYS).stdout.split() == ["days", "1"]
    listed = cli(lake_root, "snapshots").stdout
    assert str(first.snapshot_id) in listed and str(second.snapshot_id) in listed


def test_rebuild_tables_migrates_a_lake_of_the_old_layout(lake_root, recordings):
    store = PortfolioStore(LocalLake(lake_root))
    for recording in recordings.values():
        store.write_raw(snapshot_of(recording))
    old_file = lake_root / "refined" / "Data=2025-04-07" / "Setor=Financeiro" / "part-0.parquet"
    old_file.parent.mkdir(parents=True)
    old_file.write_bytes(b"old layout")
    (lake_root / "catalog.duckdb").write_bytes(b"old catalog")

    done = cli(lake_root, "rebuild-tables", "--processing-date", "2025-06-02")
    assert done.returncode == 0, done.stderr
    assert "default.tb_ibov_refined: 2 partition(s)" in done.stdout and "--delete-old" in done.stdout
    answer = cli(lake_root, "query", "SELECT Data, SUM(soma_part) AS part FROM default.tb_ibov_refined "
                                     "GROUP BY Data ORDER BY Data").stdout.split()
    assert answer[2::2] == ["2022-12-08", "2025-04-07"] and all(abs(float(p) - 100) < 0.01 for p in answer[3::2])
    assert old_file.exists()
    assert cli(lake_root, "rebuild-tables", "--delete-old").returncode == 0
    assert not (lake_root / "refined").exists() and not (lake_root / "catalog.duckdb").exists()
    assert list((lake_root / "raw").rglob("*.parquet")), "raw, the system of record, is untouched"
