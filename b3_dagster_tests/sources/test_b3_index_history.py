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
from b3_dagster.rules.indices import check_closes_on_sessions, check_published_min_max
from b3_dagster.sources.b3_format import decode_payload
from b3_dagster.sources.b3_index_history import (
    ENDPOINT_PATH,
    B3IndexHistoryClient,
    close_of_record,
    history_payload,
    history_url,
    is_monthly_evolution,
    on_current_scale,
    parse_daily_evolution_csv,
    parse_monthly_evolution_csv,
    parse_wrapped_answer,
    parse_year_grid,
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


def test_1997_is_kept_as_published_and_put_on_the_current_scale_on_request():
    parsed = grid("argus_b3_ibov_1997.json")
    closes = parsed.closes.set_index(CLOSE_DATE)[OFFICIAL_CLOSE]
    assert closes[dt.date(1997, 2, 28)] > 70_000 and closes[dt.date(1997, 3, 3)] < 11_000
    scaled = on_current_scale(parsed.closes).set_index(CLOSE_DATE)[OFFICIAL_CLOSE]
    assert scaled[dt.date(1997, 2, 28)] == pytest.approx(closes[dt.date(1997, 2, 28)] / 10)
    assert scaled[dt.date(1997, 3, 3)] == closes[dt.date(1997, 3, 3)]


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


@pytest.mark.parametrize("folder, monthly", [("csv_evolucao_mensal", True), ("csv_evolucao_diaria", False)])
def test_every_download_is_told_monthly_or_daily(folder, monthly):
    files = sorted((RECORDED / folder).glob("*.csv"))
    assert files and all(is_monthly_evolution(path.read_bytes(), path.name) is monthly for path in files)


# ---- the close of record ---------------------------------------------------------------------------------------------
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
