"""`b3-dagster import-csv` given bad input, for real: the installed command in a subprocess, the lake in a temporary
folder (B3_LAKE_ROOT). Each case must end with one clear message and a non-zero exit, and write nothing it should
not."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "b3_csv"
BY_SECTOR = FIXTURES / "csv_sector" / "IBOVDia_10-07-24.csv"  # real by-sector download, title 10/07/24


def b3_dagster(lake: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    found = shutil.which("b3-dagster", path=str(Path(sys.executable).parent))
    command = [found] if found else [sys.executable, "-m", "b3_dagster.cli"]
    env = {**os.environ, "B3_LAKE_ROOT": str(lake)}
    return subprocess.run([*command, *args], env=env, cwd=lake.parent, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def lake(tmp_path) -> Path:
    return tmp_path / "lake"


def test_a_named_pipe_is_refused_instead_of_waiting_forever(lake, tmp_path):
    fifo = tmp_path / "IBOVDia_10-07-24.csv"
    os.mkfifo(fifo)  # nothing ever writes to it: reading it would block forever
    done = b3_dagster(lake, "import-csv", str(fifo), timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{fifo}: is a named pipe (FIFO), not a regular file" in done.stdout
    assert "Traceback" not in done.stderr
    assert not (lake / "raw").exists()


def test_dev_zero_is_refused_instead_of_exhausting_memory(lake):
    done = b3_dagster(lake, "import-csv", "/dev/zero", str(BY_SECTOR), timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "/dev/zero: is a device, not a regular file" in done.stdout
    assert "MemoryError" not in done.stderr and "Traceback" not in done.stderr
    assert "written   " in done.stdout, "the good file of the same command is still imported"


def test_a_bad_sector_source_is_one_line_and_a_non_zero_exit(lake):
    done = b3_dagster(lake, "import-csv", "--sector-source", "yesterday", str(BY_SECTOR))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert errors == ["b3-dagster import-csv: error: argument --sector-source: sector_source must be "
                      "'classification', 'nearest-snapshot', 'none' or a YYYY-MM-DD date, not 'yesterday'"]
    assert not (lake / "raw").exists()


def test_conflicting_data_names_the_allow_overwrite_flag(lake, tmp_path):
    assert b3_dagster(lake, "import-csv", str(BY_SECTOR)).returncode == 0
    changed = tmp_path / "changed" / BY_SECTOR.name
    changed.parent.mkdir()
    text = BY_SECTOR.read_bytes().decode("latin-1")
    first_row = text.splitlines()[2]
    fields = first_row.split(";")
    fields[2] = "RENAMED SA"  # the company name (Ação): same weights and totals, different data
    changed.write_bytes(text.replace(first_row, ";".join(fields)).encode("latin-1"))
    done = b3_dagster(lake, "import-csv", str(changed))
    assert done.returncode == 1
    assert "refused" in done.stdout and "different data" in done.stdout
    assert f"b3-dagster import-csv --allow-overwrite {changed}" in done.stdout

    forced = b3_dagster(lake, "import-csv", "--allow-overwrite", str(changed))
    assert forced.returncode == 0 and "replaced" in forced.stdout


def test_a_file_name_date_other_than_the_title_date_is_warned_about(lake, tmp_path):
    renamed = tmp_path / "IBOVDia_11-07-24.csv"
    shutil.copy(BY_SECTOR, renamed)
    done = b3_dagster(lake, "import-csv", str(renamed))
    assert done.returncode == 0, done.stdout + done.stderr
    assert ("warning: " + f"{renamed}: the file name says 2024-07-11 but the title line says 2024-07-10; imported "
            "under the title's date 2024-07-10") in done.stdout
    assert (lake / "raw" / "date=2024-07-10").is_dir() and not (lake / "raw" / "date=2024-07-11").exists()
