"""Exported settings win: the real `dagster` CLI, run from the project folder (where it reads `./.env` over the
environment), materialises a raw snapshot with B3_LAKE_ROOT and B3_BASE_URL exported; the file must land in the
exported lake, fetched from the exported B3 host, and nothing may be written under the project's ./data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from b3_dagster.replay.b3_api import B3Replay, recorded_days

PROJECT = Path(__file__).resolve().parents[2]
DAY = "2022-12-08"  # a recorded pt-br answer: the resource's default language


def files_under(folder: Path) -> dict[str, float]:
    return {str(path): path.stat().st_mtime for path in folder.rglob("*")} if folder.exists() else {}


@pytest.mark.slow  # the real `dagster` CLI loads the whole code location in a subprocess (~7 s on 2 cores)
def test_exported_settings_win_over_the_project_folder(tmp_path):
    recording = {r.date: r for r in recorded_days()}[DAY]
    lake = tmp_path / "lake"
    project_raw = PROJECT / "data" / "raw" / f"date={DAY}"
    before = files_under(project_raw)
    home = tmp_path / "dagster_home"
    home.mkdir()
    with B3Replay(recording) as replay:
        env = {**os.environ, "B3_LAKE_ROOT": str(lake), "B3_CATALOG": "duckdb", "B3_BASE_URL": replay.base_url,
               "DAGSTER_HOME": str(home)}
        # The step runs in the CLI's own process (the code location's in_process executor, defs/resources.py): the
        # process that read ./.env and the environment is the one that writes the file.
        done = subprocess.run([str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m",
                               "b3_dagster.definitions", "--select", "ibov_raw_snapshot", "--partition", DAY],
                              cwd=PROJECT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert list((lake / "raw" / f"date={DAY}").glob("*.parquet")), "the snapshot is in the exported lake"
    assert files_under(project_raw) == before, "nothing was written under the project's ./data"
