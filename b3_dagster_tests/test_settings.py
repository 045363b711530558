"""Every setting is declared once (b3_dagster/settings.py): the README's table, .env.example and the deploy files
must agree with that declaration, and every variable the package or deploy/ reads must be declared there."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import pytest

from b3_dagster import settings

ROOT = Path(__file__).resolve().parents[1]
VARIABLE = re.compile(r"\b(B3_[A-Z][A-Z0-9_]*)\b")


def test_the_readme_table_is_generated_from_the_declaration():
    readme = (ROOT / "README.md").read_text()
    assert readme.count(settings.TABLE_START) == 1 and readme.count(settings.TABLE_END) == 1
    start = readme.index(settings.TABLE_START)
    end = readme.index(settings.TABLE_END) + len(settings.TABLE_END)
    assert readme[start:end] == settings.markdown(), \
        "README's table of settings is stale: paste `python -m b3_dagster.settings --markdown` between its markers"
    for setting in settings.SETTINGS:
        assert f"| `{setting.name}` |" in readme[start:end]


def test_env_example_is_generated_from_the_declaration():
    assert (ROOT / ".env.example").read_text() == settings.env_example(), \
        "stale: run `python -m b3_dagster.settings --env-example > .env.example`"


def test_env_example_gives_each_default_and_no_secret():
    lines = dict(line[2:].split("=", 1) for line in settings.env_example().splitlines()
                 if line.startswith("# B3_") or line.startswith("# AWS_"))
    assert lines["B3_LAKE_ROOT"] == "data" and lines["B3_CATALOG"] == "sql"
    assert lines["B3_ALERT_WEBHOOK_URL"] == "", "a secret never gets an example value"
    assert "B3_CODE_SERVER_PORT" not in lines, "deploy settings belong to deploy/, not to the code location's .env"


def test_the_systemd_env_example_sets_only_declared_settings_with_their_production_values():
    text = (ROOT / "deploy/systemd/b3-dagster.env.example").read_text()
    assigned = dict(line.split("=", 1) for line in text.splitlines() if line.startswith("B3_"))
    assert assigned, "the example sets B3_ variables"
    undeclared = sorted(set(assigned) - set(settings.BY_NAME))
    assert not undeclared, f"declare {undeclared} in b3_dagster/settings.py"
    for name, value in assigned.items():
        declared = settings.BY_NAME[name]
        if declared.production is not None:
            assert value == declared.production, name
    assert assigned["B3_CATALOG"] in ("sql", "glue")


def test_start_sh_defaults_are_the_declared_ones():
    text = (ROOT / "deploy/start.sh").read_text()
    defaults = dict(re.findall(r"\$\{(B3_[A-Z0-9_]+):-([^}]*)\}", text))
    assert {"B3_CODE_SERVER_HOST", "B3_CODE_SERVER_PORT", "B3_WEBSERVER_PORT"} <= set(defaults)
    for name, value in defaults.items():
        declared = settings.BY_NAME[name]
        if declared.shown_default:  # computed where it is read (e.g. beside the script): shown, not declared
            continue
        assert value == (declared.production or declared.default or ""), f"deploy/start.sh's default of {name}"


def _strings(path: Path) -> list[str]:
    """The string literals of a Python file, f-string fields removed (they name Python constants, not variables)."""
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    return [re.sub(r"\{[^{}]*\}", "", token.string) for token in tokens if token.type == tokenize.STRING]


def test_every_variable_read_by_the_package_or_deploy_is_declared():
    found: dict[str, str] = {}
    for path in (ROOT / "b3_dagster").rglob("*.py"):
        if "glue_jobs" in path.parts:  # runs inside AWS Glue with its own arguments, not our environment
            continue
        for text in _strings(path):
            for name in VARIABLE.findall(text):
                found.setdefault(name, str(path.relative_to(ROOT)))
    for path in (ROOT / "deploy").rglob("*"):
        if path.is_file():
            for name in VARIABLE.findall(path.read_text()):
                found.setdefault(name, str(path.relative_to(ROOT)))
    assert "B3_LAKE_ROOT" in found and "B3_COMPUTE_LOGS_BUCKET" in found, "the scan sees both trees"
    undeclared = {name: where for name, where in found.items() if name not in settings.BY_NAME}
    assert not undeclared, f"declare these in b3_dagster/settings.py: {undeclared}"


def test_a_setting_is_its_exported_value_else_its_default():
    lake = settings.BY_NAME["B3_LAKE_ROOT"]
    assert lake.value({}) == "data"
    assert lake.value({"B3_LAKE_ROOT": "  "}) == "data", "a blank export counts as unset"
    assert lake.value({"B3_LAKE_ROOT": "s3://bucket/lake"}) == "s3://bucket/lake"
    assert settings.region({"AWS_DEFAULT_REGION": "sa-east-1"}) == "sa-east-1"
    assert settings.region({"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "sa-east-1"}) == "us-east-1"
    assert settings.region({}) is None


def test_names_are_unique_and_every_setting_has_a_doc():
    names = [s.name for s in settings.SETTINGS]
    assert len(names) == len(set(names))
    assert all(s.doc and s.read in settings.READ_WHEN for s in settings.SETTINGS)


@pytest.mark.parametrize("flag, expected", [("--markdown", settings.TABLE_START),
                                            ("--env-example", "# B3_LAKE_ROOT=data")])
def test_the_module_prints_the_generated_text(flag, expected, capsys):
    settings.main([flag])
    assert expected in capsys.readouterr().out
