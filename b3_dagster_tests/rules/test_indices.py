"""The index pipeline's rules (``b3_dagster.rules.indices``) on real recorded data: B3's published min/max and its
closes on B3 sessions, the monthly values against the daily closes, the reconciliation with Yahoo, and the
GetStockIndex members against the IBOV portfolio of the same day."""

from __future__ import annotations

import datetime as dt
import json
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest

from b3_dagster.model import CLOSE_DATE, MONTH_MAX, MONTH_MIN, OFFICIAL_CLOSE
from b3_dagster.rules.indices import (
    Skipped,
    check_closes_on_sessions,
    check_monthly_matches_daily,
    check_published_min_max,
    compare_with_portfolio,
    reconcile_with_yahoo,
)
from b3_dagster.rules.quality import CheckOutcome
from b3_dagster.sources.b3_index_history import (
    parse_daily_evolution_csv,
    parse_monthly_evolution_csv,
    parse_year_grid,
    recorded_grids,
    recordings_dir,
)
from b3_dagster.sources.b3_portfolio import parse_page
from b3_dagster.sources.b3_stock_index import parse_stock_index

RECORDED = recordings_dir()
MEMBERSHIP = Path(str(resources.files("b3_dagster") / "recordings" / "b3_indices" / "json"))
FIXTURES = Path(__file__).parents[1] / "fixtures"
YAHOO_CSV = FIXTURES / "yahoo" / "gitgbg1985_ibovespa_1995-01-02_2026-03-13.csv"
GRIDS = {recorded.path.name: recorded for recorded in recorded_grids()}  # the shipped grids with their requests


def grid(name: str):
    return GRIDS[name].parse()


def daily_csv(name: str):
    return parse_daily_evolution_csv((RECORDED / "csv_evolucao_diaria" / name).read_bytes(), name)


def yahoo() -> pd.DataFrame:
    return pd.read_csv(YAHOO_CSV)


def membership(name: str):
    return parse_stock_index((MEMBERSHIP / name).read_bytes(), name)


# ---- B3's yearly grid and its downloads ------------------------------------------------------------------------------
def test_partial_year_is_complete_up_to_its_last_close_and_short_of_the_fetch_day():
    partial = grid("rb3_IndexStatistics_IBOV_2022_pt-br_rec2022-12-08.json")
    assert check_closes_on_sessions(partial).passed
    late = check_closes_on_sessions(partial, through=dt.date(2022, 12, 8))
    assert not late.passed and late.metadata["missing_days"] == ["2022-12-08"]
    december = partial.published[partial.published["mes"] == 12].iloc[0]
    december_closes = partial.closes[pd.to_datetime(partial.closes[CLOSE_DATE]).dt.month == 12][OFFICIAL_CLOSE]
    assert (december[MONTH_MIN], december[MONTH_MAX]) == (december_closes.min(), december_closes.max())


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


def test_a_published_min_that_disagrees_with_the_cells_fails_and_names_the_month():
    document = json.loads(GRIDS["rb3_IndexStatistics_IBOV_2022_pt-br_rec2022-12-08.json"].answer())
    document["min"]["rateValue5"] = "1,00"  # hand-made fault: May's published minimum
    outcome = check_published_min_max(parse_year_grid(json.dumps(document), index="IBOV", year=2022, source="altered"))
    assert not outcome.passed and "2022-05" in outcome.description and outcome.metadata["months_wrong"] == 1


# ---- the monthly values against the daily closes ---------------------------------------------------------------------
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


# ---- index membership against the portfolio --------------------------------------------------------------------------
@pytest.mark.parametrize("date", ["2022-12-08", "2025-04-07"])
def test_ibov_members_equal_the_recorded_ibov_portfolio_of_the_same_day(recordings, date):
    recording = recordings[date]
    page = parse_page(json.dumps(recording.document()), page=1, language=recording.language)
    members = membership(f"GetStockIndex_{date}_from_rb3_cassette.json")
    outcome = compare_with_portfolio(members, "IBOV", [row["cod"] for row in page.rows], page.portfolio_date)
    assert outcome.passed, outcome.description
    assert outcome.metadata["members"] == outcome.metadata["portfolio"] == len(page.rows)


def test_a_portfolio_that_differs_from_the_members_fails_naming_the_codes(recordings):
    recording = recordings["2025-04-07"]
    codes = [row["cod"] for row in recording.document()["results"]]
    members = membership("GetStockIndex_2025-04-07_from_rb3_cassette.json")
    outcome = compare_with_portfolio(members, "IBOV", codes[1:] + ["ZZZZ3"], dt.date(2025, 4, 7))
    assert not outcome.passed
    assert outcome.metadata["only_members"] == [codes[0]] and outcome.metadata["only_portfolio"] == ["ZZZZ3"]


def test_comparing_different_days_is_refused(recordings):
    codes = [row["cod"] for row in recordings["2025-04-07"].document()["results"]]
    members = membership("GetStockIndex_2022-12-08_from_rb3_cassette.json")
    with pytest.raises(ValueError, match="same day"):
        compare_with_portfolio(members, "IBOV", codes, dt.date(2025, 4, 7))
