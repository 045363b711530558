"""The dg project config is written twice (pyproject.toml for the dg CLI, b3_dagster/dg.toml for an installed copy):
they must say the same."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_packaged_dg_toml_equals_the_pyproject_dg_project_config():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["dg"]
    packaged = tomllib.loads((ROOT / "b3_dagster" / "dg.toml").read_text(encoding="utf-8"))
    assert packaged["directory_type"] == pyproject["directory_type"]
    assert packaged["project"] == pyproject["project"]
    # the CLI-only part ([tool.dg.cli]) is all pyproject may have beyond the packaged copy
    assert set(pyproject) - set(packaged) <= {"cli"}
