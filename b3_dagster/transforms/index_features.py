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
from b3_dagster.model import CLOSE_SOURCE, OFFICIAL_B3_CLOSE
from b3_dagster.quality import CheckOutcome
from b3_dagster.errors import Missing

# ---- the refined table's columns (seed 001 names) -------------------------------------------------------------------
DATA = "data"
OPEN = "preco_abertura"
HIGH = "preco_maximo"
LOW = "preco_minimo"
CLOSE = "preco_fechamento"
VOLUME = "volume_negociado"
DAILY_CHANGE = "variacao_diaria"
DAILY_CHANGE_PCT = "variacao_pct"
RANGE = "amplitude"
VOLATILITY_PCT = "volatilidade_pct"
SHORT_WINDOW = 5
LONG_WINDOW = 20
MA_SHORT = f"media_movel_{SHORT_WINDOW}d"
MA_LONG = f"media_movel_{LONG_WINDOW}d"
VOL_MEAN = f"vol_mean_{LONG_WINDOW}d"
VOL_STD = f"vol_std_{LONG_WINDOW}d"
VOL_ZSCORE = "vol_zscore"
VOLATILITY_SPIKE = "volatilidade_pico"
SPIKE_THRESHOLD = 1.5
YEAR = "year"
MONTH = "month"

LOOKBACK_SESSIONS = LONG_WINDOW - 1  # earlier sessions a day's longest window needs

INDEX_SCHEMA = pa.schema(
    [
        pa.field(DATA, pa.date32(), nullable=False),
        pa.field(OPEN, pa.float64(), nullable=False),
        pa.field(HIGH, pa.float64(), nullable=False),
        pa.field(LOW, pa.float64(), nullable=False),
        pa.field(CLOSE, pa.float64(), nullable=False),
        pa.field(VOLUME, pa.int64(), nullable=False),
        pa.field(DAILY_CHANGE, pa.float64(), nullable=False),
        pa.field(DAILY_CHANGE_PCT, pa.float64(), nullable=False),
        pa.field(RANGE, pa.float64(), nullable=False),
        pa.field(VOLATILITY_PCT, pa.float64(), nullable=False),
        pa.field(MA_SHORT, pa.float64(), nullable=True),
        pa.field(MA_LONG, pa.float64(), nullable=True),
        pa.field(VOL_MEAN, pa.float64(), nullable=True),
        pa.field(VOL_STD, pa.float64(), nullable=True),
        pa.field(VOL_ZSCORE, pa.float64(), nullable=True),
        pa.field(VOLATILITY_SPIKE, pa.int32(), nullable=False),
        pa.field(YEAR, pa.int32(), nullable=False),
        pa.field(MONTH, pa.int32(), nullable=False),
        # added after seed 001 (nullable: the table gains them by schema evolution); seed 001 names its columns
        pa.field(CLOSE_SOURCE, pa.string(), nullable=True),  # "yahoo": preco_fechamento is Yahoo's bar
        pa.field(OFFICIAL_B3_CLOSE, pa.float64(), nullable=True),  # B3's close of record, where published
    ]
)
INDEX_COLUMNS = INDEX_SCHEMA.names
YAHOO_SOURCE = "yahoo"

# Raw (Yahoo) field -> refined name: seed 001's renaming.
RENAMES = {"date": DATA, "open": OPEN, "high": HIGH, "low": LOW, "close": CLOSE, "volume": VOLUME}


class IndexHistoryGap(Missing, ValueError):
    """The bars skip B3 sessions: rolling windows over them would silently span more days than they say."""


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


# ---- quality checks on refined rows (pure; exposed as asset checks in defs/index_assets.py) -------------------------
def _days(frame: pd.DataFrame, mask: pd.Series, limit: int = 10) -> list[str]:
    return [day.isoformat() for day in frame.loc[mask, DATA].head(limit)]


def check_no_session_gaps(frame: pd.DataFrame) -> CheckOutcome:
    """Every B3 session between the first and the last refined day has a row (and no day is repeated)."""
    days = list(frame[DATA])
    gaps = missing_sessions(days)
    repeated = sorted({day.isoformat() for day in days if days.count(day) > 1})
    span = f"{min(days)}..{max(days)}" if days else "no rows"
    passed = bool(days) and not gaps and not repeated
    text = (f"{len(days)} sessions {span}, none missing" if passed else
            "no refined rows" if not days else
            f"{len(gaps)} B3 session(s) missing in {span}: {[d.isoformat() for d in gaps[:10]]}" if gaps else
            f"days repeated: {repeated[:10]}")
    return CheckOutcome(passed, text, {"sessions": len(days), "missing": len(gaps), "span": span})


def check_prices_positive(frame: pd.DataFrame) -> CheckOutcome:
    bad = (frame[[OPEN, HIGH, LOW, CLOSE]] <= 0).any(axis=1) | frame[[OPEN, HIGH, LOW, CLOSE]].isna().any(axis=1)
    return CheckOutcome(not bad.any() and not frame.empty,
                        "every price is positive" if not bad.any() else f"non-positive prices on {_days(frame, bad)}",
                        {"rows": len(frame), "failing_rows": int(bad.sum())})


def check_ohlc_consistent(frame: pd.DataFrame) -> CheckOutcome:
    """high >= max(open, close) and low <= min(open, close) on every day."""
    high_bad = frame[HIGH] < frame[[OPEN, CLOSE]].max(axis=1)
    low_bad = frame[LOW] > frame[[OPEN, CLOSE]].min(axis=1)
    bad = high_bad | low_bad
    text = ("high >= max(open, close) and low <= min(open, close) on every day" if not bad.any() else
            f"high below open/close on {_days(frame, high_bad)}; low above open/close on {_days(frame, low_bad)}")
    return CheckOutcome(not bad.any() and not frame.empty, text,
                        {"rows": len(frame), "high_below_body": int(high_bad.sum()),
                         "low_above_body": int(low_bad.sum())})


def check_zscore_recomputable(frame: pd.DataFrame, tolerance: float = 1e-9) -> CheckOutcome:
    """vol_zscore equals (volatilidade_pct - vol_mean) / vol_std from the stored columns, null exactly where an input
    is null, and volatilidade_pico equals (vol_zscore > 1.5)."""
    expected = zscore(frame[VOLATILITY_PCT], frame[VOL_MEAN], frame[VOL_STD])
    stored = frame[VOL_ZSCORE].astype("float64")
    if (not frame.empty and expected.isna().all() and stored.isna().all()
            and not frame[VOLATILITY_SPIKE].astype(bool).any()):
        # the first sessions of the history have no full window yet: there is no z-score to recompute
        return CheckOutcome.skip(f"none of the {len(frame)} rows has a full {LONG_WINDOW}-session window "
                                 "yet, so no z-score was computed to recompute", {"rows": len(frame)})
    null_mismatch = expected.isna() != stored.isna()
    value_mismatch = (expected - stored).abs() > tolerance
    spike_mismatch = frame[VOLATILITY_SPIKE].astype(int) != (stored > SPIKE_THRESHOLD).astype(int)
    bad = null_mismatch | value_mismatch.fillna(False) | spike_mismatch
    text = (f"vol_zscore and volatilidade_pico recompute from their inputs on all {len(frame)} rows" if not bad.any()
            else f"vol_zscore/volatilidade_pico do not recompute on {_days(frame, bad)}")
    return CheckOutcome(not bad.any() and not frame.empty, text,
                        {"rows": len(frame), "failing_rows": int(bad.sum()),
                         "spikes": int(frame[VOLATILITY_SPIKE].sum())})


INDEX_CHECKS = {
    "no_session_gaps": (check_no_session_gaps, "Every B3 session inside the refined range has exactly one row."),
    "prices_positive": (check_prices_positive, "Open, high, low and close are positive."),
    "ohlc_consistent": (check_ohlc_consistent, "high >= max(open, close) and low <= min(open, close)."),
    "zscore_recomputable": (check_zscore_recomputable,
                            "vol_zscore = (volatilidade_pct - vol_mean_20d) / vol_std_20d and volatilidade_pico = "
                            "vol_zscore > 1.5, recomputed from the stored columns."),
}
