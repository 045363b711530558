"""Helpers shared by several test modules (pytest fixtures live in conftest.py)."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import socket
import sys
import time
from functools import lru_cache
from pathlib import Path

import pandas as pd
import pytest
import requests
from werkzeug import Response

from b3_dagster.model import PortfolioSnapshot
from b3_dagster.sources.b3_portfolio import ENDPOINT_PATH, parse_page, rows_to_frame
from b3_dagster.sources.yahoo_chart import CHART_PATH, parse_chart

ROOT = Path(__file__).resolve().parents[1]
DERIVED = ROOT / "b3_dagster" / "recordings" / "yahoo" / "BVSP_chart_1d_2022-01-03_2026-03-13.derived.json"
REAL = ROOT / "b3_dagster_tests" / "fixtures" / "yahoo" / "bvsp_chart_2026-09-02_2026-10-02.json"


@lru_cache(maxsize=None)
def _bars(path: Path) -> pd.DataFrame:
    return parse_chart(path.read_bytes(), symbol="^BVSP").bars


def bars(path: Path = DERIVED) -> pd.DataFrame:
    return _bars(path).copy()


def snapshot_of(recording) -> PortfolioSnapshot:
    page = parse_page(recording.path.read_bytes(), page=1, language=recording.language)
    return PortfolioSnapshot(page.portfolio_date, rows_to_frame(page.rows), page.reductor,
                             page.theoretical_qty_total, source=str(recording.path.name))


FIXTURES = Path(__file__).resolve().parents[0] / "fixtures" / "yahoo"
REAL_BVSP = "bvsp_chart_2026-09-02_2026-10-02.json"  # real ^BVSP answer, 22 bars


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> dict:
    return json.loads(fixture_bytes(name))


def serve_chart(httpserver, body: bytes | dict | str, status: int = 200, symbol: str = "^BVSP") -> str:
    """Answer GET /v8/finance/chart/<symbol> with ``body``; returns the base URL for the client."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    content_type = "text/plain" if isinstance(body, str) else "application/json;charset=utf-8"
    httpserver.expect_request(CHART_PATH + symbol).respond_with_response(
        Response(data, status=status, content_type=content_type))
    return httpserver.url_for("").rstrip("/")


def quote(document: dict) -> dict:
    return document["chart"]["result"][0]["indicators"]["quote"][0]


def position_of(document: dict, day: dt.date) -> int:
    stamps = document["chart"]["result"][0]["timestamp"]
    return [dt.datetime.fromtimestamp(s, dt.timezone.utc).date() for s in stamps].index(day)


# ---- the B3 replay's path (tests/conftest.py serves it) -----------------------------------------------------------
ENDPOINT = re.compile("^" + re.escape(ENDPOINT_PATH) + ".+")


# ---- the end-to-end tests: ports, polling, the Dagster processes (fixtures in e2e/conftest.py) ------------------
LOCATION = "b3_dagster"
REPOSITORY = "__repository__"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def new_user_environment(dagster_home: Path) -> dict[str, str]:
    """This process's environment as a new user's shell has it: no ``B3_*`` or ``DAGSTER_*`` setting of the machine
    running the tests, and ``DAGSTER_HOME`` as scripts/run_local.sh exports it."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("B3_", "DAGSTER_"))}
    return {**env, "DAGSTER_HOME": str(dagster_home)}


def wait_for(what: str, predicate, timeout: float, interval: float = 1.0):
    """Poll ``predicate`` until it returns something truthy; fail naming ``what`` after ``timeout`` seconds. How long
    it waited is printed (shown with ``pytest -s``): where the slow tests' time goes."""
    started = time.monotonic()
    deadline = started + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                print(f"\nwaited {time.monotonic() - started:.1f}s for {what}")
                return value
        except Exception as error:  # the thing may not be up yet
            last_error = error
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}" + (f" (last error: {last_error})"
                                                                         if last_error else ""))


WORKSPACE_QUERY = """{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
DAEMONS_QUERY = """{ instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }"""


def location_loaded(deployment) -> bool:
    entries = deployment.graphql(WORKSPACE_QUERY)["workspaceOrError"]["locationEntries"]
    entry = next(e for e in entries if e["name"] == LOCATION)
    loaded = entry["locationOrLoadError"] or {}
    if loaded.get("__typename") == "PythonError":
        raise RuntimeError(loaded["message"])
    return entry["loadStatus"] == "LOADED" and loaded.get("__typename") == "RepositoryLocation"


def daemons_healthy(deployment) -> bool:
    statuses = deployment.graphql(DAEMONS_QUERY)["instance"]["daemonHealth"]["allDaemonStatuses"]
    needed = {"SENSOR", "SCHEDULER", "QUEUED_RUN_COORDINATOR", "MONITORING", "EVENT_LOG_CONSUMER"}  # run retries
    healthy = {s["daemonType"] for s in statuses if s["healthy"]}
    return needed <= healthy


def start_code_server(deployment) -> None:
    process = deployment.processes["code-server"]
    process.start()
    port = int(process.env["B3_CODE_SERVER_PORT"])
    wait_for("the code server's port", lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close()
             or True, timeout=120)


def start_webserver_and_daemon(deployment) -> None:
    deployment.processes["webserver"].start()
    deployment.processes["daemon"].start()
    wait_for("the webserver", lambda: requests.get(f"{deployment.webserver_url}/server_info", timeout=2).ok,
             timeout=120)
    wait_for("the code location to load in the webserver", lambda: location_loaded(deployment), timeout=120)
    wait_for("every daemon to report healthy", lambda: daemons_healthy(deployment), timeout=120)


def b3_dagster_command() -> list[str]:
    """The installed `b3-dagster` script of this environment (or the module, when the script is not installed)."""
    found = shutil.which("b3-dagster", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "b3_dagster.cli"]



def drawn_outside(figure) -> dict[str, float]:
    """How far (in pixels) what a matplotlib figure draws (titles, labels, ticks, legends) reaches past each edge of
    its picture: what a reader would see cut off. Empty when everything is inside."""
    figure.canvas.draw()
    drawn = figure.get_tightbbox(figure.canvas.get_renderer()).transformed(figure.dpi_scale_trans)
    picture = figure.bbox
    past = {"left": picture.x0 - drawn.x0, "right": drawn.x1 - picture.x1, "bottom": picture.y0 - drawn.y0,
            "top": drawn.y1 - picture.y1}
    return {edge: round(pixels, 1) for edge, pixels in past.items() if pixels > 0.5}
