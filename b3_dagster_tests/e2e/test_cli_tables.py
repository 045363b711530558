"""`b3-dagster query`, `snapshots` and `rebuild-tables` through the real CLI in a subprocess: time travel, user SQL
without file access, one-line errors, and the migration of a lake from before the Iceberg tables."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from b3_dagster.storage.lake import LocalLake
from b3_dagster.storage.portfolio_store import PortfolioStore
from b3_dagster.storage.tables import PORTFOLIO_TABLE_DEF, open_tables
from b3_dagster.transforms.sector_refine import refine_portfolio
from b3_dagster_tests.helpers import snapshot_of


def cli(lake: Path, *args: str) -> subprocess.CompletedProcess:
    found = shutil.which("b3-dagster", path=str(Path(sys.executable).parent))
    command = [found] if found else [sys.executable, "-m", "b3_dagster.cli"]
    env = {name: value for name, value in os.environ.items() if not name.startswith("B3_")}
    return subprocess.run([*command, "--lake", str(lake), *args], capture_output=True, text=True, timeout=120,
                          env=env, cwd=lake.parent)


@pytest.fixture
def two_commits(lake_root, recordings):
    """2022-12-08 committed first, then 2025-04-07: two snapshots."""
    tables = open_tables(LocalLake(lake_root))
    outcomes = []
    for date in ("2022-12-08", "2025-04-07"):
        snapshot = snapshot_of(recordings[date])
        refined = refine_portfolio(snapshot.rows, dt.date(2025, 6, 1))
        outcomes.append(tables.commit(PORTFOLIO_TABLE_DEF, pa.Table.from_pandas(refined), [date]))
    return outcomes


COUNT_DAYS = "SELECT COUNT(DISTINCT Data) AS days FROM default.tb_ibov_refined"


def test_query_answers_now_and_as_of_a_snapshot_or_a_timestamp(lake_root, two_commits):
    first, second = two_commits
    assert cli(lake_root, "query", COUNT_DAYS).stdout.split() == ["days", "2"]
    assert cli(lake_root, "query", "--as-of", str(first.snapshot_id), COUNT_DAYS).stdout.split() == ["days", "1"]
    moment = (second.committed_at - dt.timedelta(milliseconds=1)).isoformat()
    assert cli(lake_root, "query", "--as-of", moment, COUNT_DAYS).stdout.split() == ["days", "1"]
    listed = cli(lake_root, "snapshots").stdout
    assert str(first.snapshot_id) in listed and str(second.snapshot_id) in listed


@pytest.mark.parametrize(("sql", "expected"), [
    ("SELEC Setor FROM default.tb_ibov_refined", "'SELEC Setor FROM default.tb_ibov_refined'"),
    ("SELECT nope FROM default.tb_ibov_refined", "nope"),
    ("SELECT 1; SELECT 2", "expected one SQL statement"),
])
def test_query_errors_are_one_line_naming_the_users_sql(lake_root, two_commits, sql, expected):
    done = cli(lake_root, "query", sql)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("b3-dagster query: ") and expected in lines[0], done.stderr
    assert "Traceback" not in done.stderr and "SELEC AS" not in done.stderr


def test_query_cannot_write_or_read_files(lake_root, two_commits, tmp_path):
    target = tmp_path / "written-by-a-query"
    copy = cli(lake_root, "query", f"COPY (SELECT * FROM default.tb_ibov_refined) TO '{target}'")
    assert copy.returncode != 0 and "disabled by configuration" in copy.stderr and not target.exists()
    read = cli(lake_root, "query", "SELECT * FROM read_text('/etc/hostname')")
    assert read.returncode != 0 and "disabled by configuration" in read.stderr
    assert cli(lake_root, "query", COUNT_DAYS).returncode == 0, "the tables stay readable"


def test_a_table_never_committed_is_said_so_not_answered_as_an_empty_day(lake_root, two_commits):
    done = cli(lake_root, "query", "SELECT COUNT(*) AS n FROM b3_refined_db.ibov_refined")
    assert done.returncode == 0 and done.stdout.split() == ["n", "0"]
    assert "b3_refined_db.ibov_refined has no committed snapshot" in done.stderr
    assert "tb_ibov_refined" not in done.stderr, "only the tables the query names"


def test_a_bad_as_of_is_one_clear_line(lake_root, two_commits):
    done = cli(lake_root, "query", "--as-of", "last tuesday", COUNT_DAYS)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "neither a snapshot id nor an ISO timestamp" in done.stderr


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
