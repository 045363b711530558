"""IBOVESPA daily bars -> the refined index table ``ibov_refined`` (seed 001's columns and features). Pure: no I/O.

Column names are seed 001's (b3-dataflow-aws-batch): ``data``, ``preco_abertura``, ``preco_maximo``,
``preco_minimo``, ``preco_fechamento``, ``volume_negociado``, ``variacao_diaria``, ``variacao_pct``, ``amplitude``,
``volatilidade_pct``, and its volatility features ``vol_mean_*``, ``vol_std_*``, ``vol_zscore``, ``volatilidade_pico``
(z-score above 1.5), partitioned by ``year`` and ``month``.

Two deliberate differences from the seed notebook, both so that a month's rows do not change when other months are
added: the z-score is taken against the trailing 20-session window (the seed used the mean and standard deviation of
whatever rows the query returned), and windows are 20 sessions (the seed used 3). A window includes its own day
and needs all of its sessions: a day's 20-session mean uses that day and the 19 sessions before it, which may lie
in earlier partitions, so callers pass ``LOOKBACK_SESSIONS`` earlier bars (see ``refine_index``). With fewer earlier
sessions (the start of the history) the window features are null.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa

from b3_dagster.calendar import sessions
from b3_dagster.errors import IndexHistoryGap
from b3_dagster.model import (
    CLOSE,
    CLOSE_SOURCE,
    DAILY_CHANGE,
    DAILY_CHANGE_PCT,
    DATA,
    HIGH,
    INDEX_COLUMNS,
    INDEX_SCHEMA,
    LONG_WINDOW,
    LOW,
    MA_LONG,
    MA_SHORT,
    MONTH,
    OFFICIAL_B3_CLOSE,
    OPEN,
    RANGE,
    SHORT_WINDOW,
    VOL_MEAN,
    VOL_STD,
    VOL_ZSCORE,
    VOLATILITY_PCT,
    VOLATILITY_SPIKE,
    VOLUME,
    YEAR,
)

SPIKE_THRESHOLD = 1.5
LOOKBACK_SESSIONS = LONG_WINDOW - 1  # earlier sessions a day's longest window needs
YAHOO_SOURCE = "yahoo"

# Raw (Yahoo) field -> refined name: seed 001's renaming.
RENAMES = {"date": DATA, "open": OPEN, "high": HIGH, "low": LOW, "close": CLOSE, "volume": VOLUME}


def round_half_away(values: pd.Series, decimals: int = 2) -> pd.Series:
    """Athena/Trino ``ROUND`` (half away from zero), not numpy's half-to-even, so stored values match the seed's SQL."""
    scale = 10.0 ** decimals
    return np.sign(values) * np.floor(np.abs(values) * scale + 0.5) / scale


def missing_sessions(days: list[dt.date]) -> list[dt.date]:
    """B3 sessions between the first and the last of ``days`` that ``days`` lacks."""
    if not days:
        return []
    present = set(days)
    return [day for day in sessions(min(days), max(days)) if day not in present]


def index_features(bars: pd.DataFrame) -> pd.DataFrame:
    """Daily bars (Yahoo names: date, open, high, low, close, volume; consecutive B3 sessions) -> refined rows.

    Every row of ``bars`` gets its features; window features use only that row and earlier rows.
    """
    missing = [name for name in RENAMES if name not in bars.columns]
    if missing:
        raise ValueError(f"bars lack columns {missing}")
    frame = bars[list(RENAMES)].rename(columns=RENAMES).sort_values(DATA).reset_index(drop=True)
    if frame[DATA].duplicated().any():
        raise ValueError(f"bars repeat days {sorted(set(frame.loc[frame[DATA].duplicated(), DATA]))[:5]}")
    gaps = missing_sessions(list(frame[DATA]))
    if gaps:
        raise IndexHistoryGap(f"bars from {frame[DATA].min()} to {frame[DATA].max()} lack B3 sessions "
                              f"{[d.isoformat() for d in gaps[:10]]}{' ...' if len(gaps) > 10 else ''}")

    frame[DAILY_CHANGE] = frame[CLOSE] - frame[OPEN]
    frame[DAILY_CHANGE_PCT] = round_half_away(frame[DAILY_CHANGE] / frame[OPEN] * 100)
    frame[RANGE] = frame[HIGH] - frame[LOW]
    frame[VOLATILITY_PCT] = round_half_away(frame[RANGE] / frame[CLOSE] * 100)
    frame[MA_SHORT] = frame[CLOSE].rolling(SHORT_WINDOW, min_periods=SHORT_WINDOW).mean()
    frame[MA_LONG] = frame[CLOSE].rolling(LONG_WINDOW, min_periods=LONG_WINDOW).mean()
    frame[VOL_MEAN] = frame[VOLATILITY_PCT].rolling(LONG_WINDOW, min_periods=LONG_WINDOW).mean()
    frame[VOL_STD] = frame[VOLATILITY_PCT].rolling(LONG_WINDOW, min_periods=LONG_WINDOW).std(ddof=1)
    frame[VOL_ZSCORE] = zscore(frame[VOLATILITY_PCT], frame[VOL_MEAN], frame[VOL_STD])
    frame[VOLATILITY_SPIKE] = (frame[VOL_ZSCORE] > SPIKE_THRESHOLD).astype("int32")  # null z-score: not a spike
    dates = pd.to_datetime(frame[DATA])
    frame[YEAR] = dates.dt.year.astype("int32")
    frame[MONTH] = dates.dt.month.astype("int32")
    frame[CLOSE_SOURCE] = YAHOO_SOURCE  # the refined close IS Yahoo's bar (README, close of record)
    frame[OFFICIAL_B3_CLOSE] = np.nan  # filled by with_official_closes where B3's close is known
    table = pa.Table.from_pandas(frame[INDEX_COLUMNS], schema=INDEX_SCHEMA, preserve_index=False)
    return table.to_pandas(date_as_object=True)


def zscore(value: pd.Series, mean: pd.Series, std: pd.Series) -> pd.Series:
    """(value - mean) / std; null where the window is incomplete or flat (std 0)."""
    return ((value - mean) / std.where(std > 0)).astype("float64")


def refine_index(bars: pd.DataFrame, first_day: dt.date) -> pd.DataFrame:
    """Refined rows for the days from ``first_day`` on, computed over all of ``bars`` (which should start
    ``LOOKBACK_SESSIONS`` sessions before ``first_day`` when that history exists)."""
    refined = index_features(bars)
    return refined[refined[DATA] >= first_day].reset_index(drop=True)


def with_official_closes(refined: pd.DataFrame, official: pd.DataFrame, *, official_date: str,
                         official_close: str) -> pd.DataFrame:
    """``refined`` with ``fechamento_oficial_b3`` set from ``official`` (B3's closes, current scale) per session;
    null on the sessions B3 has not published."""
    closes = dict(zip(official[official_date], official[official_close]))
    out = refined.copy()
    out[OFFICIAL_B3_CLOSE] = [float(closes[day]) if day in closes else np.nan for day in out[DATA]]
    return out
