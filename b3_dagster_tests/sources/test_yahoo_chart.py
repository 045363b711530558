"""Yahoo chart client against recorded real answers served by a local HTTP server (pytest-httpserver).

Fault cases alter a recorded answer in memory (the files are never changed) and check that the client raises one
``YahooChartError`` naming the bar and field at fault.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from urllib.parse import parse_qs

import pytest

from b3_dagster.calendar import is_session, sessions
from b3_dagster.errors import ProvisionalBarError, YahooChartError
from b3_dagster.sources.http import HttpPolicy
from b3_dagster.sources.yahoo_chart import (
    YahooChartClient,
    chart_window,
    parse_chart,
)
from b3_dagster.replay.yahoo import load_chart_recordings, replay_answer
from b3_dagster_tests.helpers import FIXTURES
from b3_dagster_tests.helpers import REAL_BVSP
from b3_dagster_tests.helpers import fixture_bytes
from b3_dagster_tests.helpers import fixture_json
from b3_dagster_tests.helpers import position_of
from b3_dagster_tests.helpers import quote
from b3_dagster_tests.helpers import serve_chart
TRIMMED_MAX = "bvsp_chart_maxhistory_trimmed_15bars.json"  # real, trimmed by its author; null bar + intraday bar
PETR4 = "petr4_chart_2022-11-23_2022-12-22.json"  # real PETR4.SA answer with Yahoo's stale BRST/-7200 offset
NOT_FOUND = "chart_error_not_found.json"  # real chart error body


def client(base_url: str, symbol: str = "^BVSP", retries: int = 0) -> YahooChartClient:
    return YahooChartClient(base_url=base_url, symbol=symbol,
                            policy=HttpPolicy(request_timeout=5, fetch_deadline=20, retries=retries, backoff=0))


# ---------------------------------------------------------------------------------------------------------------------
def test_real_answer_parses_to_one_bar_per_b3_session(httpserver):
    base_url = serve_chart(httpserver, fixture_bytes(REAL_BVSP))
    history = client(base_url).fetch_daily(dt.date(2026, 9, 1), dt.date(2026, 10, 2))

    recorded = quote(fixture_json(REAL_BVSP))
    assert history.days() == sessions("2026-09-02", "2026-10-02")  # Independence Day 09-07 absent, as on B3
    assert not is_session("2026-09-07") and dt.date(2026, 9, 7) not in history.days()
    for name in ("open", "high", "low", "close", "volume"):
        assert history.bars[name].tolist() == recorded[name]
    assert history.provisional.empty  # last bar: whole points, real volume, Yahoo updated after the close
    assert history.exchange_timezone == "America/Sao_Paulo"


def test_a_range_is_one_request_with_the_local_midnight_window(httpserver):
    base_url = serve_chart(httpserver, fixture_bytes(REAL_BVSP))
    start, end = dt.date(2026, 9, 2), dt.date(2026, 10, 2)
    client(base_url).fetch_daily(start, end)

    assert len(httpserver.log) == 1
    request = httpserver.log[0][0]
    args = parse_qs(request.query_string.decode())
    period1, period2 = chart_window(start, end)
    assert (int(args["period1"][0]), int(args["period2"][0])) == (period1, period2)
    assert args["interval"] == ["1d"]
    # local midnight of the first day, in São Paulo (UTC-3): 03:00 UTC
    assert dt.datetime.fromtimestamp(period1, dt.timezone.utc) == dt.datetime(2026, 9, 2, 3, tzinfo=dt.timezone.utc)


def test_bar_dates_are_taken_in_the_exchange_time_zone():
    """yahooquery #163: some sessions were stamped 18:05/19:05 local, i.e. after midnight UTC. The local date is
    still the session; the UTC date would be the next day."""
    document = fixture_json(REAL_BVSP)
    result = document["chart"]["result"][0]
    late = 12 * 3600 + 5 * 60  # 13:00 UTC + 12h05 = 01:05 UTC next day = 22:05 in São Paulo
    result["timestamp"] = [stamp + late for stamp in result["timestamp"]]
    history = parse_chart(json.dumps(document), symbol="^BVSP")
    utc_dates = [dt.datetime.fromtimestamp(s, dt.timezone.utc).date() for s in result["timestamp"]]
    assert history.days() == sessions("2026-09-02", "2026-10-02")
    assert history.days() != utc_dates


def test_petr4_answer_with_yahoos_stale_dst_offset_dates_by_iana_zone():
    document = fixture_json(PETR4)
    meta = document["chart"]["result"][0]["meta"]
    assert (meta["gmtoffset"], meta["exchangeTimezoneName"]) == (-7200, "America/Sao_Paulo")
    history = parse_chart(fixture_bytes(PETR4), symbol="PETR4.SA")
    assert history.days() == sessions("2022-11-23", "2022-12-22")


def _no_timestamps(document):
    del document["chart"]["result"][0]["timestamp"]


def _null_close(document):
    quote(document)["close"][position_of(document, dt.date(2026, 9, 15))] = None


def _high_below_low(document):
    position = position_of(document, dt.date(2026, 9, 16))
    q = quote(document)
    q["high"][position], q["low"][position] = q["low"][position], q["high"][position]


def _bar_on_a_holiday(document):
    stamps = document["chart"]["result"][0]["timestamp"]
    stamps[position_of(document, dt.date(2026, 9, 8))] -= 24 * 3600  # 2026-09-07, Independence Day


def _duplicated_day(document):
    stamps = document["chart"]["result"][0]["timestamp"]
    position = position_of(document, dt.date(2026, 9, 10))
    stamps[position] = stamps[position - 1] + 3600


def _negative_price(document):
    quote(document)["open"][position_of(document, dt.date(2026, 9, 21))] = -1.0


def _other_symbol(document):
    document["chart"]["result"][0]["meta"]["symbol"] = "PETR4.SA"


def _short_volume_list(document):
    quote(document)["volume"].pop()


@pytest.mark.parametrize("mutate, expected", [
    (_no_timestamps, "no bars"),
    (_null_close, "bar 2026-09-15, field 'close'"),
    (_high_below_low, "bar 2026-09-16, field 'high'"),
    (_bar_on_a_holiday, "bar 2026-09-07, field 'timestamp'"),
    (_duplicated_day, "two bars on the same day"),
    (_negative_price, "bar 2026-09-21, field 'open'"),
    (_other_symbol, "not '^BVSP'"),
    (_short_volume_list, "field 'volume'"),
], ids=lambda value: getattr(value, "__name__", None) or str(value)[:20])
def test_bad_answers_raise_one_clear_error(httpserver, mutate, expected):
    document = copy.deepcopy(fixture_json(REAL_BVSP))
    mutate(document)
    base_url = serve_chart(httpserver, document)
    with pytest.raises(YahooChartError) as raised:
        client(base_url).fetch_daily(dt.date(2026, 9, 2), dt.date(2026, 10, 2))
    assert expected in str(raised.value)
    assert "[url http://" in str(raised.value)


@pytest.mark.parametrize("status", [404, 200])  # recent endpoints also answer errors with HTTP 200
def test_yahoo_error_json_is_reported_with_its_code(httpserver, status):
    base_url = serve_chart(httpserver, fixture_bytes(NOT_FOUND), status=status, symbol="NOPE3.SA")
    with pytest.raises(YahooChartError, match="Not Found: No data found, symbol may be delisted"):
        client(base_url, symbol="NOPE3.SA").fetch_daily(dt.date(2026, 9, 2), dt.date(2026, 9, 4))


def test_rate_limit_is_retried_then_reported(httpserver):
    base_url = serve_chart(httpserver, "Too Many Requests", status=429)
    with pytest.raises(YahooChartError, match="HTTP 429"):
        client(base_url, retries=2).fetch_daily(dt.date(2026, 9, 2), dt.date(2026, 9, 4))
    assert len(httpserver.log) == 3  # the first try and two retries


def test_a_null_bar_in_the_full_history_answer_is_refused():
    """The real whole-history answer holds an all-null bar on 1993-06-10 (Corpus Christi)."""
    with pytest.raises(YahooChartError, match="bar 1993-06-10"):
        parse_chart(fixture_bytes(TRIMMED_MAX), symbol="^BVSP")


def test_an_intraday_newest_bar_is_set_apart_as_provisional():
    """The same real answer, served for 2026-09-18..25 by the replay: its newest bar was captured at 12:17 BRT,
    before the close (volume 0, fractional points)."""
    recordings = load_chart_recordings(FIXTURES)
    only_trimmed = {"^BVSP": [s for s in recordings["^BVSP"] if s.source == TRIMMED_MAX]}
    period1, period2 = chart_window(dt.date(2026, 9, 18), dt.date(2026, 9, 25))
    status, body = replay_answer(only_trimmed, "^BVSP", period1, period2)
    history = parse_chart(json.dumps(body), symbol="^BVSP")

    assert status == 200
    assert history.days() == sessions("2026-09-18", "2026-09-24")
    assert history.provisional["date"].tolist() == [dt.date(2026, 9, 25)]
    assert history.provisional["volume"].tolist() == [0]
    with pytest.raises(ProvisionalBarError, match="2026-09-25"):
        history.select(sessions("2026-09-18", "2026-09-25"))
    assert len(history.select(sessions("2026-09-18", "2026-09-24"))) == 5


def test_a_requested_session_missing_from_the_answer_is_an_error():
    history = parse_chart(fixture_bytes(REAL_BVSP), symbol="^BVSP")
    with pytest.raises(YahooChartError, match=r"no bar for B3 session\(s\) \['2026-10-05'\]"):
        history.select(sessions("2026-09-28", "2026-10-05"))


def test_a_finalised_newest_bar_with_whole_points_is_kept():
    """Without regularMarketTime the rule falls back to the bar itself: whole points and real volume are final."""
    document = fixture_json(REAL_BVSP)
    del document["chart"]["result"][0]["meta"]["regularMarketTime"]
    history = parse_chart(json.dumps(document), symbol="^BVSP")
    assert history.provisional.empty and history.days()[-1] == dt.date(2026, 10, 2)


def test_not_json_is_a_clear_error():
    with pytest.raises(YahooChartError, match="not JSON"):
        parse_chart(b"<html>Too Many Requests</html>", symbol="^BVSP")
