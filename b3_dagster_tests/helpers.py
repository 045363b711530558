"""Helpers shared by several test modules (pytest fixtures live in conftest.py)."""

import datetime as dt
import json
from functools import lru_cache
from pathlib import Path

import pandas as pd
from werkzeug import Response

from b3_dagster.model import PortfolioSnapshot
from b3_dagster.sources.b3_portfolio import parse_page, rows_to_frame
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
