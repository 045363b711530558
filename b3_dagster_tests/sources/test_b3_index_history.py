"""B3's official index closes: every shipped real grid and Evolução download parsed and checked, the client against
a local HTTP server replaying a real answer, and the reconciliation with Yahoo measured on the real data."""

from __future__ import annotations

import base64
import datetime as dt
import json
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest
import yaml

from b3_dagster.errors import B3IndexHistoryError
from b3_dagster.model import CLOSE_DATE, INDEX_CLOSES_COLUMNS, MONTH_MAX, MONTH_MIN, OFFICIAL_CLOSE
from b3_dagster.rules.quality import CheckOutcome
from b3_dagster.sources.b3_format import decode_payload
from b3_dagster.sources.b3_index_history import (
    ENDPOINT_PATH,
    B3IndexHistoryClient,
    Skipped,
    check_closes_on_sessions,
    check_monthly_matches_daily,
    check_published_min_max,
    close_of_record,
    history_payload,
    history_url,
    is_monthly_evolution,
    on_current_scale,
    parse_daily_evolution_csv,
    parse_monthly_evolution_csv,
    parse_wrapped_answer,
    parse_year_grid,
    reconcile_with_yahoo,
)
from b3_dagster.sources.http import HttpPolicy

RECORDED = Path(str(resources.files("b3_dagster") / "recordings" / "b3_index_history"))
FIXTURES = Path(__file__).parents[1] / "fixtures"
YAHOO_CSV = FIXTURES / "yahoo" / "gitgbg1985_ibovespa_1995-01-02_2026-03-13.csv"

# Every bare answer shipped, with the request it answered (the file name says it; SOURCES.md says where from):
# file -> (index, year, language, sessions, first close day, last close day)
GRIDS = {
    "argus_b3_ibov_1968.json": ("IBOV", 1968, "pt-br", 246, "1968-01-02", "1968-12-27"),
    "argus_b3_ibov_1997.json": ("IBOV", 1997, "pt-br", 249, "1997-01-02", "1997-12-30"),
    "rb3_IndexStatistics_IBOV_2022_pt-br_rec2022-12-08.json": ("IBOV", 2022, "pt-br", 234, "2022-01-03", "2022-12-07"),
    "rb3_IndexStatistics_IBOV_2022_en-us_rec2025-04-07.json": ("IBOV", 2022, "en-us", 250, "2022-01-03", "2022-12-29"),
}
WRAPPED = {"pulse_ISEE_2025_wrapped.json": "ISEE", "pulse_IGCX_2025_wrapped.json": "IGCX",
           "pulse_ICO2_2025_wrapped.json": "ICO2"}
DAILY_CSVS = {  # file -> (year, sessions, last day)
    "Evolucao_Diaria_IBOVESPA_1998_lumpleme_TEXTCOPY.csv": (1998, 246, "1998-12-30"),
    "Evolucao_Diaria_IBOVESPA_2021_to-2021-04-07_LuisXIII.csv": (2021, 64, "2021-04-07"),
    "Evolucao_Diaria_IBOVESPA_2021_to-2021-08-25_danielpiasecki.csv": (2021, 161, "2021-08-25"),
    "Evolucao_Diaria_IBOVESPA_2022_to-2022-05-04_paularodrigues19.csv": (2022, 84, "2022-05-04"),
}
MONTHLY_CSVS = {"Evolucao_Mensal_IBOVESPA_2014-2025_JulioZequin.csv": ("IBOV", 140, (2025, 8, 137321.64)),
                "Evolucao_Mensal_IFIX_2014-2025_python-crepaldi.csv": ("IFIX", 143, (2025, 11, 3631.23))}


def grid(name: str):
    index, year, language, *_ = GRIDS[name]
    return parse_year_grid((RECORDED / "json" / name).read_bytes(), index=index, year=year, language=language,
                           source=name)


def daily_csv(name: str):
    return parse_daily_evolution_csv((RECORDED / "csv_evolucao_diaria" / name).read_bytes(), name)


def yahoo() -> pd.DataFrame:
    return pd.read_csv(YAHOO_CSV)


def test_every_shipped_file_is_covered_by_a_test():
    shipped = {path.name for path in RECORDED.rglob("*") if path.is_file() and path.name != "SOURCES.md"}
    assert shipped == set(GRIDS) | set(WRAPPED) | set(DAILY_CSVS) | set(MONTHLY_CSVS)


# ---- request ---------------------------------------------------------------------------------------------------------
def test_url_is_the_base64_payload_in_b3s_path():
    url = history_url("IBOV", 2024)
    assert url.startswith("https://sistemaswebb3-listados.b3.com.br" + ENDPOINT_PATH)
    assert decode_payload(url.rsplit("/", 1)[1]) == {"index": "IBOV", "language": "pt-br", "year": "2024"}


@pytest.mark.parametrize(("index", "year", "language"), [("ibov", 2024, "pt-br"), ("IBOV", 1900, "pt-br"),
                                                         ("IBOV", 2024, "es")])
def test_payload_refuses_what_b3_cannot_answer(index, year, language):
    with pytest.raises(ValueError):
        history_payload(index, year, language)


@pytest.mark.parametrize("cassette", ["rb3_IndexStatistics_IBOV_2022_pt-br_rec2022-12-08.yml",
                                      "rb3_IndexStatistics_IBOV_2022_en-us_rec2025-04-07.yml"])
def test_recorded_requests_ask_what_our_payload_asks(cassette):
    """rb3 sent ``year`` as an integer and B3 answered; we send a string (as the pulse recordings did): same keys."""
    document = yaml.safe_load((FIXTURES / "b3_index_history" / "cassettes" / cassette).read_text())
    (interaction,) = document["http_interactions"]
    sent = decode_payload(interaction["request"]["uri"].rsplit("/", 1)[1])
    ours = history_payload(sent["index"], sent["year"], sent["language"])
    assert set(sent) == set(ours) and str(sent["year"]) == ours["year"] == "2022"
    shipped = RECORDED / "json" / (cassette[:-4] + ".json")
    assert interaction["response"]["body"]["string"].encode("utf-8") == shipped.read_bytes()


def test_client_fetches_and_parses_a_real_answer_over_http(httpserver):
    name = "rb3_IndexStatistics_IBOV_2022_en-us_rec2025-04-07.json"
    body = (RECORDED / "json" / name).read_bytes()
    httpserver.expect_request(ENDPOINT_PATH + base64.b64encode(json.dumps(
        {"index": "IBOV", "language": "en-us", "year": "2022"}, separators=(",", ":")).encode()).decode()
    ).respond_with_data(body, content_type="application/json")
    client = B3IndexHistoryClient(httpserver.url_for("").rstrip("/"), language="en-us",
                                  policy=HttpPolicy(retries=0))
    raw, year = client.fetch_year("IBOV", 2022)
    assert raw == body
    assert year.closes.equals(grid(name).closes)
    (request, _), = httpserver.log
    assert decode_payload(request.path.rsplit("/", 1)[1])["index"] == "IBOV"


def test_client_names_the_request_on_http_errors(httpserver):
    httpserver.expect_request(ENDPOINT_PATH + "x", method="GET").respond_with_data("no")  # never matched
    client = B3IndexHistoryClient(httpserver.url_for("").rstrip("/"), policy=HttpPolicy(retries=0))
    with pytest.raises(B3IndexHistoryError, match=r"IBXX 2024 \(pt-br\).*HTTP 500"):
        client.fetch_year("IBXX", 2024)


# ---- the year grids --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(GRIDS))
def test_every_recorded_grid_parses_and_its_published_min_max_equal_its_cells(name):
    index, year, _, sessions, first, last = GRIDS[name]
    parsed = grid(name)
    closes = parsed.closes
    assert list(closes.columns) == INDEX_CLOSES_COLUMNS
    assert len(closes) == sessions and set(closes["indice"]) == {index}
    assert closes[CLOSE_DATE].min() == dt.date.fromisoformat(first) and parsed.last_day == dt.date.fromisoformat(last)
    assert all(day.weekday() < 5 for day in closes[CLOSE_DATE])
    outcome = check_published_min_max(parsed)
    assert outcome.passed, outcome.description
    assert outcome.metadata["months_with_closes"] == 12


@pytest.mark.parametrize("name", sorted(WRAPPED))
def test_every_wrapped_recording_parses_with_its_own_request(name):
    body = (RECORDED / "json" / name).read_bytes()
    parsed = parse_wrapped_answer(body, name)
    assert (parsed.index, parsed.year) == (WRAPPED[name], 2025)
    first = json.loads(body)["raw"]["results"][1]["rateValue1"]  # 2025-01-02, the year's first session
    assert len(parsed.closes) == 250 and parsed.closes.iloc[0][CLOSE_DATE] == dt.date(2025, 1, 2)
    assert f"{parsed.closes.iloc[0][OFFICIAL_CLOSE]:,.2f}".translate(str.maketrans(",.", ".,")) == first
    assert check_published_min_max(parsed).passed
    outcome = check_closes_on_sessions(parsed)
    assert outcome.passed, outcome.description
    assert outcome.metadata["sessions"] == 250


def test_number_format_follows_the_language_and_both_recordings_agree():
    pt, en = (grid(f"rb3_IndexStatistics_IBOV_2022_{lang}.json") for lang in ("pt-br_rec2022-12-08",
                                                                               "en-us_rec2025-04-07"))
    first = pt.closes.iloc[0]
    assert first[OFFICIAL_CLOSE] == 103_921.62 or first[OFFICIAL_CLOSE] > 100_000
    merged = pt.closes.merge(en.closes, on=CLOSE_DATE)
    assert len(merged) == 234 and (merged[f"{OFFICIAL_CLOSE}_x"] == merged[f"{OFFICIAL_CLOSE}_y"]).all()
    february = en.closes[en.closes[CLOSE_DATE] == dt.date(2022, 2, 1)][OFFICIAL_CLOSE].item()
    assert february == 113_228.31
    with pytest.raises(B3IndexHistoryError, match=r"day \d+ month \d+.*rateValue.*en-us"):
        parse_year_grid((RECORDED / "json" / "rb3_IndexStatistics_IBOV_2022_pt-br_rec2022-12-08.json").read_bytes(),
                        index="IBOV", year=2022, language="en-us", source="pt-br body read as en-us")


def test_partial_year_is_complete_up_to_its_last_close_and_short_of_the_fetch_day():
    partial = grid("rb3_IndexStatistics_IBOV_2022_pt-br_rec2022-12-08.json")
    assert check_closes_on_sessions(partial).passed
    late = check_closes_on_sessions(partial, through=dt.date(2022, 12, 8))
    assert not late.passed and late.metadata["missing_days"] == ["2022-12-08"]
    december = partial.published[partial.published["mes"] == 12].iloc[0]
    december_closes = partial.closes[pd.to_datetime(partial.closes[CLOSE_DATE]).dt.month == 12][OFFICIAL_CLOSE]
    assert (december[MONTH_MIN], december[MONTH_MAX]) == (december_closes.min(), december_closes.max())


def test_1997_is_kept_as_published_and_put_on_the_current_scale_on_request():
    parsed = grid("argus_b3_ibov_1997.json")
    closes = parsed.closes.set_index(CLOSE_DATE)[OFFICIAL_CLOSE]
    assert closes[dt.date(1997, 2, 28)] > 70_000 and closes[dt.date(1997, 3, 3)] < 11_000
    scaled = on_current_scale(parsed.closes).set_index(CLOSE_DATE)[OFFICIAL_CLOSE]
    assert scaled[dt.date(1997, 2, 28)] == pytest.approx(closes[dt.date(1997, 2, 28)] / 10)
    assert scaled[dt.date(1997, 3, 3)] == closes[dt.date(1997, 3, 3)]


def test_old_years_are_skipped_by_the_session_check_and_the_calendar_gaps_are_named():
    """exchange_calendars' BVMF lacks some old B3 holidays: measured on the real grids."""
    old = grid("argus_b3_ibov_1997.json")
    assert isinstance(check_closes_on_sessions(old), Skipped)
    forced = check_closes_on_sessions(old, before_calendar=True)
    assert isinstance(forced, CheckOutcome) and not forced.passed
    assert forced.metadata["missing_days"] == ["1997-03-27", "1997-07-09"]
    assert forced.metadata["off_calendar_days"] == []
    evolution = daily_csv("Evolucao_Diaria_IBOVESPA_1998_lumpleme_TEXTCOPY.csv").year_data
    assert check_closes_on_sessions(evolution, before_calendar=True).metadata["missing_days"] == ["1998-04-09"]


def test_a_close_on_a_weekend_or_a_holiday_fails_the_session_check():
    parsed = grid("rb3_IndexStatistics_IBOV_2022_en-us_rec2025-04-07.json")
    extra = pd.DataFrame({CLOSE_DATE: [dt.date(2022, 4, 21)], "indice": ["IBOV"], OFFICIAL_CLOSE: [1.0]})
    moved = type(parsed)(parsed.index, parsed.year, pd.concat([parsed.closes, extra]), parsed.published, "altered")
    outcome = check_closes_on_sessions(moved)
    assert not outcome.passed and outcome.metadata["off_calendar_days"] == ["2022-04-21"]


def _altered(name: str, change) -> bytes:
    document = json.loads((RECORDED / "json" / name).read_bytes())
    change(document)
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["results"].pop(), r"31 rows"),
        (lambda d: d["results"][4].pop("rateValue7"), r"day 5 month 7.*rateValue7.*schema"),
        (lambda d: d["results"][29].update(rateValue2="100,00"), r"impossible date 2022-02-30"),
        (lambda d: d["results"][2].update(rateValue3="12O.000,00"), r"day 3 month 3.*pt-br number"),
        (lambda d: d["results"][2].update(rateValue3=120000), r"day 3 month 3.*strings"),
        (lambda d: d.pop("max"), r"field 'max'"),
    ],
)
def test_a_damaged_grid_is_refused_naming_the_cell(change, message):
    name = "rb3_IndexStatistics_IBOV_2022_pt-br_rec2022-12-08.json"
    with pytest.raises(B3IndexHistoryError, match=message):
        parse_year_grid(_altered(name, change), index="IBOV", year=2022, language="pt-br", source="altered")


def test_a_published_min_that_disagrees_with_the_cells_fails_and_names_the_month():
    name = "rb3_IndexStatistics_IBOV_2022_pt-br_rec2022-12-08.json"
    body = _altered(name, lambda d: d["min"].update(rateValue5="1,00"))
    outcome = check_published_min_max(parse_year_grid(body, index="IBOV", year=2022, source="altered"))
    assert not outcome.passed and "2022-05" in outcome.description and outcome.metadata["months_wrong"] == 1


def test_truncated_body_is_a_clear_error():
    body = (RECORDED / "json" / "argus_b3_ibov_1968.json").read_bytes()
    with pytest.raises(B3IndexHistoryError, match="not valid JSON"):
        parse_year_grid(body[:500], index="IBOV", year=1968)


# ---- the CSV downloads -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(DAILY_CSVS))
def test_every_daily_evolution_download_parses_with_the_second_minimo_row_as_maxima(name):
    year, sessions, last = DAILY_CSVS[name]
    evolution = daily_csv(name)
    parsed = evolution.year_data
    assert (evolution.title, parsed.index, parsed.year) == ("IBOVESPA", "IBOV", year)
    assert len(parsed.closes) == sessions and parsed.last_day == dt.date.fromisoformat(last)
    assert check_published_min_max(parsed).passed
    bounds = parsed.published.dropna()
    assert len(bounds) == len(set(pd.to_datetime(parsed.closes[CLOSE_DATE]).dt.month))
    assert (bounds[MONTH_MAX] >= bounds[MONTH_MIN]).all()
    assert bool(evolution.warnings) == name.endswith("TEXTCOPY.csv")  # the text copy is UTF-8, B3 serves latin-1


def test_daily_downloads_agree_with_each_other_and_with_the_api_grid():
    short = daily_csv("Evolucao_Diaria_IBOVESPA_2021_to-2021-04-07_LuisXIII.csv").year_data.closes
    long = daily_csv("Evolucao_Diaria_IBOVESPA_2021_to-2021-08-25_danielpiasecki.csv").year_data.closes
    assert short.equals(long.iloc[: len(short)])
    csv_2022 = daily_csv("Evolucao_Diaria_IBOVESPA_2022_to-2022-05-04_paularodrigues19.csv").year_data.closes
    api_2022 = grid("rb3_IndexStatistics_IBOV_2022_en-us_rec2025-04-07.json").closes
    assert csv_2022.equals(api_2022.iloc[: len(csv_2022)].reset_index(drop=True))


def test_a_damaged_daily_download_names_the_line():
    data = (RECORDED / "csv_evolucao_diaria" / "Evolucao_Diaria_IBOVESPA_2021_to-2021-04-07_LuisXIII.csv").read_bytes()
    with pytest.raises(B3IndexHistoryError, match=r"line 4.*field 'Fev'"):
        parse_daily_evolution_csv(data.replace(b"117.517,57", b"117,517.57", 1), "altered.csv")
    with pytest.raises(B3IndexHistoryError, match=r"expected 36 lines"):
        parse_daily_evolution_csv(b"\r\n".join(data.split(b"\r\n")[:-3]), "truncated.csv")


@pytest.mark.parametrize("name", sorted(MONTHLY_CSVS))
def test_every_monthly_evolution_download_parses(name):
    index, months, (year, month, value) = MONTHLY_CSVS[name]
    evolution = parse_monthly_evolution_csv((RECORDED / "csv_evolucao_mensal" / name).read_bytes(), name)
    frame = evolution.months
    assert set(frame["indice"]) == {index} and len(frame) == months
    assert (evolution.start, evolution.end) == (dt.date(2014, 1, 1), dt.date(2025, 12, 31))
    assert frame.iloc[-1].tolist() == [index, year, month, value]


def test_monthly_values_are_the_months_last_daily_close():
    monthly = parse_monthly_evolution_csv(
        (RECORDED / "csv_evolucao_mensal" / "Evolucao_Mensal_IBOVESPA_2014-2025_JulioZequin.csv").read_bytes(), "m")
    daily = pd.concat([grid("rb3_IndexStatistics_IBOV_2022_en-us_rec2025-04-07.json").closes,
                       daily_csv("Evolucao_Diaria_IBOVESPA_2021_to-2021-08-25_danielpiasecki.csv").year_data.closes])
    outcome = check_monthly_matches_daily(monthly.months, daily)
    # 12 months of 2022 and Jan-Jul 2021 equal; Aug 2021 is partial in the daily download (made 2021-08-25), so its
    # last close is not the month's: left out and named, not a failure
    assert outcome.passed and outcome.metadata["months_compared"] == 19
    assert outcome.metadata["months_partial_in_daily"] == ["IBOV 2021-08 (daily closes end 2021-08-25)"]


def test_a_monthly_value_that_departs_from_the_daily_close_fails_naming_the_month():
    monthly = parse_monthly_evolution_csv(
        (RECORDED / "csv_evolucao_mensal" / "Evolucao_Mensal_IBOVESPA_2014-2025_JulioZequin.csv").read_bytes(), "m")
    months = monthly.months.copy()
    june = (months["ano"] == 2022) & (months["mes"] == 6)
    months.loc[june, "fechamento_mes"] += 1.0  # hand-made fault: one month off by a point
    outcome = check_monthly_matches_daily(months, grid("rb3_IndexStatistics_IBOV_2022_en-us_rec2025-04-07.json").closes)
    assert not outcome.passed and outcome.metadata["months_different"] == 1
    assert outcome.metadata["different"][0] == "IBOV 2022-06: monthly 98542.95 vs daily 98541.95"


def test_the_ifix_month_in_progress_at_download_is_named_not_failed():
    """IFIX's monthly download was made 2025-11-26: its November value is that day's close, not the month's last
    (3,660.41 per the daily series derived from B3's grids); every other month equals the daily month-end."""
    monthly = parse_monthly_evolution_csv(
        (RECORDED / "csv_evolucao_mensal" / "Evolucao_Mensal_IFIX_2014-2025_python-crepaldi.csv").read_bytes(), "m")
    derived = pd.read_csv(FIXTURES / "b3_index_history" / "derived" / "opbrreit_ifix_daily_2010-12-30_2025-12-19.csv")
    daily = pd.DataFrame({CLOSE_DATE: pd.to_datetime(derived["Date"]).dt.date, "indice": "IFIX",
                          OFFICIAL_CLOSE: derived["IFIX"]})
    outcome = check_monthly_matches_daily(monthly.months, daily)
    assert outcome.passed and outcome.metadata["months_compared"] == 143
    [in_progress] = outcome.metadata["months_in_progress_at_download"]
    assert in_progress.startswith("IFIX 2025-11: monthly 3631.23 is the close of 2025-11-") and "3660.41" in in_progress
    # the same value on a month that was not the download's last is a difference
    strict = check_monthly_matches_daily(monthly.months, daily, in_progress=set())
    assert not strict.passed and strict.metadata["different"][0].startswith("IFIX 2025-11")


@pytest.mark.parametrize("folder, monthly", [("csv_evolucao_mensal", True), ("csv_evolucao_diaria", False)])
def test_every_download_is_told_monthly_or_daily(folder, monthly):
    files = sorted((RECORDED / folder).glob("*.csv"))
    assert files and all(is_monthly_evolution(path.read_bytes(), path.name) is monthly for path in files)


# ---- reconciliation with Yahoo ---------------------------------------------------------------------------------------
def test_yahoo_is_b3s_close_rounded_except_on_named_days_in_2022():
    """Measured: on 220 of 250 days of 2022 Yahoo's ^BVSP close is B3's official close rounded to whole points
    (|difference| <= 0.5); the other 30 differ by 8.77 to 655.57 points, clustered in Jan-Feb and Nov-Dec."""
    result = reconcile_with_yahoo(grid("rb3_IndexStatistics_IBOV_2022_en-us_rec2025-04-07.json").closes, yahoo())
    inside = result.days[result.days["dentro_tolerancia"]]
    assert len(result.days) == 250 and len(inside) == 220
    assert inside["diferenca"].abs().max() <= 0.5
    assert (inside["fechamento_yahoo"] == inside["fechamento"].round()).mean() > 0.99
    outside = result.outside
    assert len(outside) == 30 and outside["diferenca"].abs().min() == pytest.approx(4.04)
    assert dt.date(2022, 12, 6) in set(outside[CLOSE_DATE])
    assert outside.set_index(CLOSE_DATE).loc[dt.date(2022, 12, 6), "diferenca"] == pytest.approx(-655.57)
    outcome = result.outcome()
    assert not outcome.passed and "2022-01-17" in outcome.description
    assert result.only_b3 == [] and result.only_yahoo == []


def test_1997_reconciles_only_on_the_current_scale_and_yahoo_lacks_a_b3_session():
    result = reconcile_with_yahoo(grid("argus_b3_ibov_1997.json").closes, yahoo())
    assert len(result.days) == 248 and len(result.outside) == 7
    january = result.days[result.days[CLOSE_DATE] == dt.date(1997, 1, 2)].iloc[0]
    assert abs(january["diferenca"]) < 0.1  # Jan-Feb 1997 compared after B3's closes were divided by 10
    assert result.only_b3 == [dt.date(1997, 10, 6)] and result.only_yahoo == [dt.date(1997, 2, 11)]


def test_reconciliation_with_nothing_in_common_is_skipped_not_passed():
    closes = grid("argus_b3_ibov_1968.json").closes
    assert isinstance(reconcile_with_yahoo(closes, yahoo()).outcome(), Skipped)


def test_reconciliation_refuses_two_indices_at_once():
    a = grid("argus_b3_ibov_1968.json").closes
    b = a.assign(indice="IBXX")
    with pytest.raises(ValueError, match="one index"):
        reconcile_with_yahoo(pd.concat([a, b]), yahoo())


def test_close_of_record_takes_b3s_close_where_published_and_says_so():
    official = grid("rb3_IndexStatistics_IBOV_2022_pt-br_rec2022-12-08.json").closes  # stops at 2022-12-07
    bars = yahoo()
    bars = bars[(bars["date"] >= "2022-11-01") & (bars["date"] <= "2022-12-29")]
    record = close_of_record(official, bars).set_index(CLOSE_DATE)
    assert record.loc[dt.date(2022, 12, 6)].tolist() == [110_188.57, "b3"]
    assert record.loc[dt.date(2022, 12, 8)].tolist() == [107_245.0, "yahoo"]
    assert record.index.is_unique and record.index.max() == dt.date(2022, 12, 29)
    assert (record["fonte_fechamento"] == "yahoo").sum() == 16  # the 16 sessions 2022-12-08 .. 12-29
    assert len(record) == 250  # all of 2022: B3 up to 12-07, Yahoo after


def test_every_recorded_grid_is_replayed_over_http_to_the_real_client(httpserver):
    import re

    from werkzeug import Response

    from b3_dagster.sources.b3_index_history import recorded_grids, replay_answer

    grids = recorded_grids()
    assert {g.path.name for g in grids} == set(GRIDS) | set(WRAPPED)
    def handler(request):
        status, body = replay_answer(grids, request.path[len(ENDPOINT_PATH):])
        return Response(body, status=status, content_type="application/json")

    httpserver.expect_request(re.compile("^" + re.escape(ENDPOINT_PATH) + ".+")).respond_with_handler(handler)
    base = httpserver.url_for("").rstrip("/")
    for recorded in grids:
        client = B3IndexHistoryClient(base, language=recorded.language, policy=HttpPolicy(retries=0))
        _, fetched = client.fetch_year(recorded.index, recorded.year)
        assert fetched.closes.equals(recorded.parse().closes), recorded.path.name
        assert check_published_min_max(fetched).passed
    with pytest.raises(B3IndexHistoryError, match=r"HTTP 404.*no recorded answer for.*IBOV.*2024"):
        B3IndexHistoryClient(base, policy=HttpPolicy(retries=0)).fetch_year("IBOV", 2024)
