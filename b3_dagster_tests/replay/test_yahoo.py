"""The packaged recordings (b3_dagster/recordings/yahoo) and the replay server the README demo starts."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import pytest
import requests

from b3_dagster.calendar import sessions
from b3_dagster.errors import YahooChartError
from b3_dagster.sources.yahoo_chart import YahooChartClient
from b3_dagster_tests.helpers import FIXTURES, REAL_BVSP, fixture_json, quote

RECORDINGS = Path(__file__).resolve().parents[2] / "b3_dagster" / "recordings" / "yahoo"
DERIVED = RECORDINGS / "BVSP_chart_1d_2022-01-03_2026-03-13.derived.json"
GITGBG_CSV = FIXTURES / "gitgbg1985_ibovespa_1995-01-02_2026-03-13.csv"


def test_the_real_recording_is_shipped_unchanged():
    assert (RECORDINGS / "BVSP_chart_1d_2026-09-02_2026-10-02.real.json").read_bytes() == \
        (FIXTURES / REAL_BVSP).read_bytes()


def test_the_derived_recording_holds_exactly_the_csv_rows():
    """Every bar of the derived recording is a row of the real CSV (2022-01-03 on), value for value."""
    with open(GITGBG_CSV, newline="", encoding="utf-8") as stream:
        rows = [row for row in csv.DictReader(stream) if row["date"] >= "2022-01-03"]
    document = json.loads(DERIVED.read_text(encoding="utf-8"))
    assert document["b3_dagster_provenance"]["kind"] == "derived"
    result = document["chart"]["result"][0]
    days = [dt.datetime.fromtimestamp(s, dt.timezone.utc).date().isoformat() for s in result["timestamp"]]
    assert days == [row["date"] for row in rows]
    assert all(dt.datetime.fromtimestamp(s, dt.timezone.utc).hour == 13 for s in result["timestamp"])
    for name in ("open", "high", "low", "close"):
        assert quote(document)[name] == [float(row[name]) for row in rows]
    assert quote(document)["volume"] == [int(row["volume"]) for row in rows]


def test_replay_answers_a_window_with_the_real_bars(yahoo_replay):
    history = YahooChartClient(base_url=yahoo_replay).fetch_daily(dt.date(2026, 9, 14), dt.date(2026, 9, 18))
    recorded = fixture_json(REAL_BVSP)
    stamps = recorded["chart"]["result"][0]["timestamp"]
    expected = [close for stamp, close in zip(stamps, quote(recorded)["close"])
                if dt.date(2026, 9, 14) <= dt.datetime.fromtimestamp(stamp, dt.timezone.utc).date()
                <= dt.date(2026, 9, 18)]
    assert history.days() == sessions("2026-09-14", "2026-09-18")
    assert history.bars["close"].tolist() == expected


def test_replay_of_the_derived_range_covers_every_session(yahoo_replay):
    history = YahooChartClient(base_url=yahoo_replay).fetch_daily(dt.date(2022, 1, 3), dt.date(2026, 3, 12))
    assert history.days() == sessions("2022-01-03", "2026-03-12")


def test_replay_keeps_the_recorded_unfinalised_last_bar_provisional(yahoo_replay):
    history = YahooChartClient(base_url=yahoo_replay).fetch_daily(dt.date(2026, 3, 9), dt.date(2026, 3, 13))
    assert history.provisional["date"].tolist() == [dt.date(2026, 3, 13)]
    assert history.days() == sessions("2026-03-09", "2026-03-12")


def test_replay_answers_unknown_symbols_with_yahoos_not_found(yahoo_replay):
    response = requests.get(f"{yahoo_replay}/v8/finance/chart/NOPE3.SA?period1=0&period2=1", timeout=5)
    assert response.status_code == 404
    assert response.json() == fixture_json("chart_error_not_found.json")
    with pytest.raises(YahooChartError, match="no bars"):  # a window the recordings do not cover
        YahooChartClient(base_url=yahoo_replay).fetch_daily(dt.date(2026, 5, 4), dt.date(2026, 5, 8))
