"""Shared fixtures: recorded real B3 answers served over real HTTP on 127.0.0.1, and a temporary lake."""

from __future__ import annotations

from pathlib import Path

import pytest
from werkzeug import Request, Response

from b3_dagster.library_warnings import as_pytest_filterwarnings
from b3_dagster.replay.b3_api import Recording, answer, recorded_days
from b3_dagster.sources.b3_portfolio import ENDPOINT_PATH
from b3_dagster_tests.helpers import ENDPOINT


@pytest.fixture(scope="session")
def recordings() -> dict[str, Recording]:
    """The shipped recordings of B3's API, by portfolio date (see b3_dagster/recordings/b3_api/SOURCES.md)."""
    found = {recording.date: recording for recording in recorded_days()}
    assert {"2022-12-08", "2025-04-07"} <= set(found), "recorded B3 answers are missing from the package"
    return found


@pytest.fixture
def serve_recording(httpserver):
    """Make the local HTTP server answer B3's URL shape with one recorded day (paged as requested).

    Returns a function ``serve(recording, mutate=None)``; ``mutate(document) -> document`` alters the recorded
    answer (for fault cases) before it is paged.
    """

    def serve(recording: Recording, mutate=None) -> str:
        def handler(request: Request) -> Response:
            token = request.path[len(ENDPOINT_PATH):]
            document = mutate(recording.document()) if mutate else None
            status, body = answer(recording, token, document)
            return Response(body, status=status, content_type="application/json; charset=utf-8")

        httpserver.expect_request(ENDPOINT).respond_with_handler(handler)
        return httpserver.url_for("").rstrip("/")

    return serve


@pytest.fixture(scope="session")
def yahoo_replay() -> str:
    """Yahoo's chart API replayed on 127.0.0.1 from the shipped recordings (b3_dagster/recordings/yahoo)."""
    from b3_dagster.replay.yahoo import serve_chart_recordings

    server, base_url = serve_chart_recordings()
    yield base_url
    server.shutdown()
    server.server_close()


@pytest.fixture
def lake_root(tmp_path) -> Path:
    root = tmp_path / "lake"
    root.mkdir()
    return root


@pytest.fixture
def two_commits(lake_root, recordings):
    """The lake's portfolio table with 2022-12-08 committed first, then 2025-04-07: two snapshots (their commit
    outcomes, in that order)."""
    import datetime as dt

    import pyarrow as pa

    from b3_dagster.storage.lake import LocalLake
    from b3_dagster.storage.tables import PORTFOLIO_TABLE_DEF, open_tables
    from b3_dagster.transforms.sector_refine import refine_portfolio
    from b3_dagster_tests.helpers import snapshot_of

    tables = open_tables(LocalLake(lake_root))
    outcomes = []
    for date in ("2022-12-08", "2025-04-07"):
        snapshot = snapshot_of(recordings[date])
        refined = refine_portfolio(snapshot.rows, dt.date(2025, 6, 1))
        outcomes.append(tables.commit(PORTFOLIO_TABLE_DEF, pa.Table.from_pandas(refined), [date]))
    return outcomes


@pytest.fixture
def query_tables():
    """``query_tables(lake_root, sql, as_of=None)``: Athena-style SQL on a local lake's Iceberg tables, as a
    notebook runs it (``b3_dagster.connect``)."""
    import b3_dagster
    from b3_dagster.storage.tables import run_query

    def run(lake_root, sql: str, as_of: str | None = None):
        return run_query(b3_dagster.connect(str(lake_root), as_of, catalog="sql"), sql)

    return run


# ---- cfn-lint: one process for every template the tests lint (it takes ~2 s to start) ----------------------------
CLOUDFORMATION = Path(__file__).resolve().parents[1] / "deploy" / "aws"
CFN_TEMPLATES = {"template": CLOUDFORMATION / "template.yaml", "production": CLOUDFORMATION / "production.yaml"}


def broken_template_text() -> str:
    """deploy/aws/template.yaml with a property cfn-lint must refuse (and a Glue version of the wrong type)."""
    text = CFN_TEMPLATES["template"].read_text()
    broken = text.replace('GlueVersion: "5.0"', "GlueVersion: 5.0\n      Bogus: 1")
    assert broken != text, "the template changed: pick another line to break"
    return broken


@pytest.fixture(scope="session")
def cfn_lint_findings(tmp_path_factory) -> dict[str, list[str]]:
    """cfn-lint's findings (``parseable`` lines) per template name: the shipped ``template`` and ``production``
    stacks, and ``broken`` (``broken_template_text()``, which must have findings), linted in one run."""
    import subprocess
    import sys

    broken = tmp_path_factory.mktemp("cfn") / "broken.yaml"
    broken.write_text(broken_template_text())
    paths = {**CFN_TEMPLATES, "broken": broken}
    done = subprocess.run([str(Path(sys.executable).with_name("cfn-lint")), "--format", "parseable",
                           *map(str, paths.values())], capture_output=True, text=True, timeout=300)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    findings = {name: [line for line in lines if line.startswith(f"{path}:")] for name, path in paths.items()}
    assert sum(map(len, findings.values())) == len(lines), f"unattributed cfn-lint output: {done.stdout}{done.stderr}"
    assert done.returncode == 0 or lines, f"cfn-lint failed without findings: {done.stderr}"
    return findings


# ---- the quick run (-m "not slow": a developer's loop; .ci/run runs every test) --------------------------------------
# Left out of it: every test in e2e/ and aws/, which start real processes or servers (the CLI, the demo, Dagster's
# daemon and webserver, PostgreSQL, Chromium, moto, Spark), and the tests elsewhere that take 2 s or more on their
# own (measured with --durations=0, marked @pytest.mark.slow where they are defined).
REAL_PROCESS_FOLDERS = ("e2e", "aws")
TESTS_ROOT = Path(__file__).resolve().parent

# ---- running on several workers (pytest-xdist, scripts/test.sh) ---------------------------------------------------
# The modules whose tests start heavy real processes or servers (Spark, the demo, a browser, Dagster's daemon; and the
# kill/commit races between processes) share one worker and run one after another. The production test (PostgreSQL,
# the daemon and the webserver, 2-3 min) is left out of that group: serialised behind the others it made the
# suite's longest path (9.7 min; 7.7 min beside them, measured 2026-11-30). Beside the demo or Spark both run slower
# on 2 cores; their waits allow for it (the production test's are 60-150 s per step). Everything else is spread over
# the workers (`--dist loadgroup`); each test passes alone and in any order.
PROCESS_GROUP_MODULES = ("test_glue_refine.py", "test_assets_on_s3.py", "test_glue_job_parity.py",
                         "test_code_location_warnings.py", "test_portfolio_backfill.py", "test_demo.py",
                         "test_exported_settings.py", "test_ui_after_demo.py", "test_table_processes.py")
# xdist hands out the groups first (the largest first), then single tests in collection order: the production test,
# one test of 2-3 min that waits for much of it, is moved to the front of them, so that it starts beside the process
# group instead of ending the run on one worker while the others are idle.
FIRST_OF_THE_SINGLE_TESTS = ("test_production.py",)
# A module- or session-scoped fixture is built once per worker that runs one of its users: with `--dist loadgroup`
# the users of these costly ones (a 25-day range refine; a cfn-lint run) would land on several workers and each pay it.
# They share a group of their own, so it is built once; the fixtures are only read by their tests.
SHARED_FIXTURES = ("refined_lake", "cfn_lint_findings")


def pytest_configure(config):
    # the library warnings the code location and the CLI silence (b3_dagster/library_warnings.py), silenced here
    # too: the summary then lists only warnings nobody has looked at yet (the subprocess tests check the edges)
    for line in as_pytest_filterwarnings():
        config.addinivalue_line("filterwarnings", line)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups into the test ids on each worker
def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.path.name not in FIRST_OF_THE_SINGLE_TESTS)  # stable: the rest keep their order
    for item in items:
        path = Path(item.path).resolve()
        if path.is_relative_to(TESTS_ROOT) and path.relative_to(TESTS_ROOT).parts[0] in REAL_PROCESS_FOLDERS:
            item.add_marker(pytest.mark.slow)
        if item.path.name in PROCESS_GROUP_MODULES:
            item.add_marker(pytest.mark.xdist_group("processes"))
            continue
        shared = next((name for name in SHARED_FIXTURES if name in getattr(item, "fixturenames", ())), None)
        if shared:
            item.add_marker(pytest.mark.xdist_group(shared))
