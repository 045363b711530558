"""A user who runs `dagster dev` (or `dagster definitions validate`) meets no warning addressed to developers: the
jobs do not mix backfill policies, and the library warnings that cannot be avoided are silenced, narrowly, where
the code location loads (b3_dagster/library_warnings.py)."""

import subprocess
import sys
import warnings
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]

# What a code server does when it loads the location (`dagster dev`, `dagster api grpc`): import the module and
# build every job. `-W default` shows even the DeprecationWarnings Python hides outside __main__.
LOAD = """
import gc
import importlib
import b3_dagster.definitions as location
jobs = location.defs.get_repository_def().get_all_jobs()
print("jobs:", len(jobs))
print("collector after the load:", gc.isenabled(), gc.get_freeze_count() > 200_000)
gc.disable()  # a caller that has it off (the demo's processes) keeps it off
importlib.reload(location)
print("collector kept off:", not gc.isenabled())
"""


def test_no_job_mixes_backfill_policies():
    from b3_dagster.definitions import build_definitions

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        jobs = build_definitions().get_repository_def().get_all_jobs()
    assert jobs
    mixed = [str(w.message) for w in caught if "BackfillPolic" in str(w.message)]
    assert mixed == [], mixed


@pytest.mark.slow
def test_loading_the_code_location_prints_no_warning(tmp_path):
    done = subprocess.run([sys.executable, "-W", "default", "-c", LOAD], cwd=PROJECT, capture_output=True,
                          text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                                                       "DAGSTER_HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "jobs:" in done.stdout
    assert "Warning" not in done.stderr, done.stderr[-3000:]
    # the load pauses the collector and freezes what it made (definitions.py); the process collects again after it
    assert "collector after the load: True True" in done.stdout and "collector kept off: True" in done.stdout, \
        done.stdout
