"""Seed 001's refined index features, on real recorded bars, checked against an independent plain-Python computation,
and the partition-edge rule: a month computed with its 19 earlier sessions equals the same days computed over the
whole history."""

from __future__ import annotations

import datetime as dt
import math
import statistics
from functools import lru_cache

import pandas as pd
import pytest

from b3_dagster.calendar import sessions
from b3_dagster.errors import IndexHistoryGap
from b3_dagster.rules import quality
from b3_dagster.model import INDEX_COLUMNS, VOL_ZSCORE
from b3_dagster.transforms.index_features import (
    with_official_closes,
    LOOKBACK_SESSIONS,
    index_features,
    refine_index,
    round_half_away,
)
from b3_dagster_tests.helpers import DERIVED
from b3_dagster_tests.helpers import REAL
from b3_dagster_tests.helpers import bars


def half_away(value: float) -> float:
    return math.copysign(math.floor(abs(value) * 100 + 0.5) / 100, value)


def expected_rows(raw: pd.DataFrame) -> list[dict]:
    """The features, computed row by row with plain Python (statistics module), independently of pandas rolling."""
    rows, vols = [], []
    closes = list(raw["close"])
    for i, bar in enumerate(raw.to_dict("records")):
        vol = half_away((bar["high"] - bar["low"]) / bar["close"] * 100)
        vols.append(vol)
        row = {"data": bar["date"], "variacao_diaria": bar["close"] - bar["open"],
               "variacao_pct": half_away((bar["close"] - bar["open"]) / bar["open"] * 100),
               "amplitude": bar["high"] - bar["low"], "volatilidade_pct": vol,
               "media_movel_5d": statistics.fmean(closes[i - 4:i + 1]) if i >= 4 else None,
               "media_movel_20d": statistics.fmean(closes[i - 19:i + 1]) if i >= 19 else None}
        if i >= 19:
            mean, std = statistics.fmean(vols[i - 19:i + 1]), statistics.stdev(vols[i - 19:i + 1])
            row.update(vol_mean_20d=mean, vol_std_20d=std, vol_zscore=(vol - mean) / std)
        else:
            row.update(vol_mean_20d=None, vol_std_20d=None, vol_zscore=None)
        row["volatilidade_pico"] = int(row["vol_zscore"] is not None and row["vol_zscore"] > 1.5)
        rows.append(row)
    return rows


def assert_rows_match(refined: pd.DataFrame, expected: list[dict]) -> None:
    assert len(refined) == len(expected)
    for got, want in zip(refined.to_dict("records"), expected):
        for name, value in want.items():
            if value is None:
                assert pd.isna(got[name]), (got["data"], name)
            elif isinstance(value, float):
                assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-9), (got["data"], name)
            else:
                assert got[name] == value, (got["data"], name)


def test_columns_are_seed_001s():
    seed_columns = ["data", "preco_abertura", "preco_maximo", "preco_minimo", "preco_fechamento", "volume_negociado",
                    "variacao_diaria", "variacao_pct", "amplitude", "volatilidade_pct", "volatilidade_pico"]
    assert [name for name in INDEX_COLUMNS if name in seed_columns] == seed_columns
    # seed 001's partition columns, then the columns added since (last: the table gains them by schema evolution)
    assert INDEX_COLUMNS[-4:] == ["year", "month", "fonte_fechamento", "fechamento_oficial_b3"]


@pytest.mark.parametrize("source, start, end", [
    (REAL, "2026-09-02", "2026-10-02"),  # the real chart answer: 22 sessions
    (DERIVED, "2025-01-02", "2025-12-30"),  # a year of the recorded CSV history
    (DERIVED, "2022-01-03", "2022-03-31"),  # the start of the recording (windows fill up)
], ids=["real-2026-09", "derived-2025", "derived-2022Q1"])
def test_features_match_an_independent_computation(source, start, end):
    raw = bars(source)
    raw = raw[(raw["date"] >= dt.date.fromisoformat(start)) & (raw["date"] <= dt.date.fromisoformat(end))]
    refined = index_features(raw)
    assert list(refined.columns) == INDEX_COLUMNS
    assert refined["data"].tolist() == raw["date"].tolist()
    assert refined["preco_fechamento"].tolist() == raw["close"].tolist()
    assert refined["volume_negociado"].tolist() == raw["volume"].tolist()
    assert set(refined["fonte_fechamento"]) == {"yahoo"} and refined["fechamento_oficial_b3"].isna().all()
    assert_rows_match(refined, expected_rows(raw.reset_index(drop=True)))
    assert refined["month"].tolist() == [day.month for day in raw["date"]]


def test_a_year_of_real_history_has_some_volatility_spikes_but_not_many():
    raw = bars()
    refined = index_features(raw[raw["date"].map(lambda d: d.year) == 2025])
    spikes = int(refined["volatilidade_pico"].sum())
    assert 0 < spikes < len(refined) // 4
    assert (refined.loc[refined["volatilidade_pico"] == 1, "vol_zscore"] > 1.5).all()


@pytest.mark.parametrize("month_start", ["2022-02-01", "2023-01-02", "2024-07-01", "2025-03-05", "2026-03-02"])
def test_month_edges_use_the_sessions_of_earlier_partitions(month_start):
    """A month refined from its own bars plus the 19 sessions before it equals the same days refined over the whole
    history; without those sessions its first days would lack their 20-session windows."""
    first = dt.date.fromisoformat(month_start)
    history = bars()
    whole = index_features(history)
    month_end = (pd.Timestamp(first) + pd.offsets.MonthEnd(0)).date()
    expected = whole[(whole["data"] >= first) & (whole["data"] <= month_end)].reset_index(drop=True)

    before = history[history["date"] < first].tail(LOOKBACK_SESSIONS)
    assert before["date"].tolist() == sessions(first - dt.timedelta(days=60), first - dt.timedelta(days=1))[-19:]
    month = history[(history["date"] >= first) & (history["date"] <= month_end)]
    with_lookback = refine_index(pd.concat([before, month]), first)
    pd.testing.assert_frame_equal(with_lookback, expected)

    alone = refine_index(month, first)
    assert alone["media_movel_20d"].isna().iloc[0]
    assert not expected["media_movel_20d"].isna().any()
    # the first day's 20-session mean is the mean of that day and the 19 sessions before it
    assert expected["media_movel_20d"].iloc[0] == pytest.approx(
        statistics.fmean([*before["close"], month["close"].iloc[0]]))


def test_the_real_answer_crosses_a_month_edge():
    """Real chart answer: 2026-10-01's 20-session mean uses 19 September sessions."""
    raw = bars(REAL)
    october = refine_index(raw, dt.date(2026, 10, 1))
    assert october["data"].tolist() == [dt.date(2026, 10, 1), dt.date(2026, 10, 2)]
    september_tail = raw[raw["date"] < dt.date(2026, 10, 1)]["close"].tail(19).tolist()
    assert october["media_movel_20d"].iloc[0] == pytest.approx(statistics.fmean([*september_tail,
                                                                                  raw["close"].iloc[20]]))


def test_a_missing_session_is_refused():
    raw = bars()
    raw = raw[(raw["date"] >= dt.date(2025, 6, 2)) & (raw["date"] <= dt.date(2025, 7, 31))]
    with pytest.raises(IndexHistoryGap, match="2025-06-24"):
        index_features(raw[raw["date"] != dt.date(2025, 6, 24)])


@pytest.mark.parametrize("value, decimals, expected, half_even", [
    (0.125, 2, 0.13, 0.12), (-0.125, 2, -0.13, -0.12), (2.5, 0, 3.0, 2.0), (-2.5, 0, -3.0, -2.0),
    (0.625, 2, 0.63, 0.62), (0.375, 2, 0.38, 0.38), (1.234, 2, 1.23, 1.23),
])
def test_rounding_is_athenas_half_away_from_zero(value, decimals, expected, half_even):
    assert round_half_away(pd.Series([value]), decimals).iloc[0] == expected
    assert round(value, decimals) == half_even  # what Python's (and numpy's) half-to-even would have stored


# ---- checks -----------------------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _refined_2025() -> pd.DataFrame:
    raw = bars()
    return index_features(raw[raw["date"].map(lambda d: d.year) == 2025])


def refined_2025() -> pd.DataFrame:
    return _refined_2025().copy()


def _drop_a_session(frame):
    return frame[frame["data"] != dt.date(2025, 8, 14)]


def _repeat_a_day(frame):
    return pd.concat([frame, frame.iloc[[10]]])


def _negative_close(frame):
    frame.loc[30, "preco_fechamento"] = -1.0
    return frame


def _high_below_close(frame):
    frame.loc[40, "preco_maximo"] = frame.loc[40, "preco_fechamento"] - 1
    return frame


def _low_above_open(frame):
    frame.loc[41, "preco_minimo"] = frame.loc[41, "preco_abertura"] + 1
    return frame


def _tampered_zscore(frame):
    frame.loc[50, "vol_zscore"] += 0.01
    return frame


def _flipped_spike(frame):
    frame.loc[60, "volatilidade_pico"] = 1 - frame.loc[60, "volatilidade_pico"]
    return frame


def _zscore_where_window_is_short(frame):
    frame.loc[5, "vol_zscore"] = 0.0  # the first 19 days have no complete window: the z-score must be null
    return frame


@pytest.mark.parametrize("check, mutate", [
    (quality.check_no_session_gaps, _drop_a_session),
    (quality.check_no_session_gaps, _repeat_a_day),
    (quality.check_prices_positive, _negative_close),
    (quality.check_ohlc_consistent, _high_below_close),
    (quality.check_ohlc_consistent, _low_above_open),
    (quality.check_zscore_recomputable, _tampered_zscore),
    (quality.check_zscore_recomputable, _flipped_spike),
    (quality.check_zscore_recomputable, _zscore_where_window_is_short),
], ids=lambda value: getattr(value, "__name__", str(value)))
def test_checks_pass_on_real_rows_and_fail_on_each_fault(check, mutate):
    assert check(refined_2025()).passed
    outcome = check(mutate(refined_2025()))
    assert not outcome.passed
    assert "2025-" in outcome.description or "repeated" in outcome.description


@pytest.mark.parametrize("name", list(quality.INDEX_CHECKS))
def test_every_check_fails_on_no_rows(name):
    check, _ = quality.INDEX_CHECKS[name]
    assert not check(refined_2025().iloc[0:0]).passed


def test_zscore_check_is_skipped_when_no_row_has_a_full_window():
    """The first sessions of the history have no 20-session window: no z-score exists to recompute, so the check
    says so instead of passing after comparing nulls with nulls."""
    first_rows = refined_2025()
    first_rows = first_rows[first_rows[VOL_ZSCORE].isna()].head(5)
    assert len(first_rows) == 5
    outcome = quality.check_zscore_recomputable(first_rows)
    assert outcome.skipped and "full 20-session window" in outcome.skipped and not outcome.passed


def test_official_closes_fill_only_the_sessions_b3_published():
    raw = bars(REAL)
    refined = index_features(raw)
    first, second = refined["data"].iloc[0], refined["data"].iloc[1]
    official = pd.DataFrame({"data": [first, dt.date(1990, 1, 2)], "fechamento": [123456.78, 1.0]})
    filled = with_official_closes(refined, official, official_date="data", official_close="fechamento")
    assert filled["fechamento_oficial_b3"].iloc[0] == 123456.78
    assert filled["fechamento_oficial_b3"].iloc[1:].isna().all(), second
    assert filled["preco_fechamento"].tolist() == refined["preco_fechamento"].tolist()  # Yahoo's bar untouched
