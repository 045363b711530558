"""The README's first command, for real: `b3-dagster demo` in a subprocess on an empty lake, then the table is
queried from outside. And the code location loads as `dagster dev` would load it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]


def cli() -> list[str]:
    found = shutil.which("b3-dagster", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "b3_dagster.cli"]


@pytest.mark.slow
def test_the_demo_runs_the_chain_end_to_end_offline(tmp_path, query_tables):
    lake = tmp_path / "data"
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home")}
    (tmp_path / "home").mkdir()
    for name in ("B3_LAKE_ROOT", "B3_CATALOG", "B3_BASE_URL", "B3_YAHOO_BASE_URL"):
        env.pop(name, None)
    done = subprocess.run([*cli(), "--lake", str(lake), "demo"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"Apache Iceberg, Iceberg SQL catalog {lake / 'iceberg_catalog.db'}" in done.stdout
    assert "FAILED CHECKS" not in done.stdout
    assert "total_participacao" in done.stdout

    raw_days = sorted(p.name for p in (lake / "raw").glob("date=*"))
    assert "date=2022-12-08" in raw_days and "date=2025-04-07" in raw_days and len(raw_days) >= 5
    by_day = query_tables(lake, "SELECT Data, SUM(soma_part) AS part, SUM(total_codigo) AS tickers "
                                "FROM default.tb_ibov_refined GROUP BY Data ORDER BY Data")
    assert len(by_day) == len(raw_days)
    assert by_day["part"].between(99.99, 100.01).all()
    index = query_tables(lake, 'SELECT COUNT(*) AS n FROM "b3_refined_db"."ibov_refined"')
    assert index["n"].iloc[0] > 200
    charts = sorted(p.name for p in (lake / "charts").glob("*.png"))
    assert charts == ["ibov_close_moving_averages.png", "ibov_sector_participation.png"]
    assert all((lake / "charts" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for name in charts)

    again = subprocess.run([*cli(), "--lake", str(lake), "demo"], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "unchanged" in again.stdout, "a second demo finds the raw partitions identical and keeps them"


def test_the_code_location_loads_as_dagster_dev_loads_it():
    dagster = Path(sys.executable).parent / "dagster"
    done = subprocess.run([str(dagster), "definitions", "validate", "-w", str(PROJECT / "workspace.yaml")],
                          cwd=PROJECT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Validation successful" in done.stdout + done.stderr
