"""Data-quality rules of both pipelines (the portfolio, the index history), as pure functions over frames (Dagster
turns them into asset checks). Rules may use the transforms (to recompute a value), never the other way round.

Tolerances follow B3's rounding: every weight has three decimals, so a sum over ~90 tickers can drift by a few
thousandths; B3's own files sum to exactly 100.000 and its sector subtotals agree with the rows to 0.002.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from b3_dagster.model import (
    ANOMALY_FLAG,
    ANOMALY_SCORE,
    CLOSE,
    DATA,
    DATE,
    HIGH,
    LONG_WINDOW,
    LOW,
    OPEN,
    PART_SUM,
    SECTOR,
    TICKER_COUNT,
    VOL_MEAN,
    VOL_STD,
    VOL_ZSCORE,
    VOLATILITY_PCT,
    VOLATILITY_SPIKE,
    PortfolioSnapshot,
)
from b3_dagster.model import RAW_DATE_COLUMN as RAW_DATE
from b3_dagster.transforms.anomaly import AnomalyResult, score_anomalies
from b3_dagster.transforms.index_features import SPIKE_THRESHOLD, missing_sessions, zscore

WEIGHT_TOTAL_TOLERANCE = 0.01  # percentage points, for the day's total of 100
SECTOR_SUBTOTAL_TOLERANCE = 0.005  # percentage points, per sector
NO_SUBTOTAL_REASON = ("B3 published no sector subtotal (partAcum) for these rows (a standard CSV download, whose "
                      "sectors were placed from another snapshot): nothing to compare with")
NO_ROWS_REASON = "there are no rows to check"


@dataclass(frozen=True)
class CheckOutcome:
    """A rule's verdict. ``skipped`` holds the reason when the rule had nothing to compare: such an outcome is neither
    passed nor failed (``failed`` is False), and is reported as skipped, never as passed."""

    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None

    @classmethod
    def skip(cls, reason: str, metadata: dict[str, Any] | None = None) -> "CheckOutcome":
        return cls(False, f"skipped: {reason}", dict(metadata or {}), skipped=reason)

    @property
    def failed(self) -> bool:
        return not self.passed and self.skipped is None


def weights_sum_to_100(raw: pd.DataFrame, tolerance: float = WEIGHT_TOTAL_TOLERANCE) -> CheckOutcome:
    totals = raw.groupby("DataCarteira")["part"].sum()
    off = {str(day): round(total, 6) for day, total in totals.items() if abs(total - 100.0) > tolerance}
    return CheckOutcome(
        passed=not off and not totals.empty,
        description=("IBOV weights sum to 100%" if not off and not totals.empty
                     else f"weights do not sum to 100% (±{tolerance}) on {len(off) or 'any'} day(s)"),
        metadata={"days": len(totals), "worst_total": float(totals.iloc[(totals - 100).abs().argmax()])
                  if not totals.empty else None, "days_off": off},
    )


def sector_subtotals_match_b3(raw: pd.DataFrame, tolerance: float = SECTOR_SUBTOTAL_TOLERANCE) -> CheckOutcome:
    """Each sector's sum of ``part`` equals B3's own subtotal ``partAcum`` (on the sector's last row)."""
    with_subtotal = raw[raw["partAcum"].notna()]
    if with_subtotal.empty:
        return CheckOutcome.skip(NO_SUBTOTAL_REASON, {"sectors_compared": 0})
    grouped = with_subtotal.groupby(["DataCarteira", "segment"], sort=True)
    comparison = pd.DataFrame({"sum_part": grouped["part"].sum(), "partAcum": grouped["partAcum"].last()})
    comparison["difference"] = (comparison["sum_part"] - comparison["partAcum"]).abs()
    bad = comparison[comparison["difference"] > tolerance]
    return CheckOutcome(
        passed=bad.empty,
        description=("every sector's weights add up to B3's subtotal (partAcum)" if bad.empty
                     else f"{len(bad)} sector(s) disagree with B3's subtotal partAcum by more than {tolerance}"),
        metadata={"sectors_compared": len(comparison), "max_difference": round(float(comparison["difference"].max()), 6),
                  "disagreeing": [f"{day} {sector}" for day, sector in bad.index[:10]]},
    )


def positive_weights_and_quantities(raw: pd.DataFrame) -> CheckOutcome:
    """Every ``part`` and ``theoricalQty`` is greater than 0: a position of zero or less is no position."""
    if raw.empty:
        return CheckOutcome.skip(NO_ROWS_REASON, {"rows": 0})
    bad = raw[(raw["part"] <= 0) | (raw["theoricalQty"] <= 0) | raw["part"].isna()]
    listed = [f"{row.DataCarteira} {row.cod} (part {row.part}, theoricalQty {row.theoricalQty})"
              for row in bad.head(10).itertuples()]
    return CheckOutcome(bad.empty, f"all {len(raw)} weights and theoretical quantities are greater than 0"
                        if bad.empty else f"{len(bad)} ticker(s) with a weight or quantity of zero or less: {listed}",
                        {"rows": len(raw), "not_positive": [str(cod) for cod in bad["cod"].head(20)]})


def no_duplicate_tickers(raw: pd.DataFrame) -> CheckOutcome:
    if raw.empty:
        return CheckOutcome.skip(NO_ROWS_REASON, {"duplicated_tickers": []})
    duplicated = raw[raw.duplicated(["DataCarteira", "cod"], keep=False)]
    tickers = sorted(set(duplicated["cod"]))
    return CheckOutcome(not tickers, "no ticker appears twice in a day" if not tickers
                        else f"tickers listed more than once: {tickers[:10]}", {"duplicated_tickers": tickers[:20]})


def no_empty_sectors(raw: pd.DataFrame) -> CheckOutcome:
    if raw.empty:
        return CheckOutcome.skip(NO_ROWS_REASON, {"tickers": []})
    empty = raw[raw["segment"].isna() | (raw["segment"].astype(str).str.strip() == "")]
    return CheckOutcome(empty.empty, "every ticker has a sector" if empty.empty
                        else f"{len(empty)} ticker(s) without a sector", {"tickers": sorted(empty["cod"])[:20]})


def theoretical_quantity_matches_header(snapshot: PortfolioSnapshot) -> CheckOutcome:
    total = int(snapshot.rows["theoricalQty"].sum())
    header = snapshot.theoretical_qty_total
    if header is None:
        return CheckOutcome.skip("the answer carries no header total (theoricalQty) to compare with",
                                 {"sum_theoretical_qty": total})
    return CheckOutcome(total == header, "theoretical quantities add up to B3's header total" if total == header
                        else f"theoretical quantities sum to {total:,} but B3's header says {header:,}",
                        {"sum_theoretical_qty": total, "header_total": header})


def canonical_subtotals(raw: pd.DataFrame, mapping: pd.DataFrame | None) -> pd.Series:
    """B3's subtotals (partAcum, one per source label and day) summed per canonical sector: (Data, Setor) ->
    partAcum. Each label is placed in one canonical sector as a whole (``map_sectors``), so this is what B3 itself
    says that sector weighs; NaN where a label of the sector has no subtotal (a standard CSV day).
    ``mapping`` None: the source labels are the sectors (raw refined as B3 printed it)."""
    if mapping is None:
        return raw.groupby([RAW_DATE, "segment"])["partAcum"].last().rename_axis([DATE, SECTOR]).rename("partAcum")
    placed = raw.merge(mapping[[RAW_DATE, "cod", SECTOR]], on=[RAW_DATE, "cod"], how="inner")
    labels = placed.groupby([RAW_DATE, "segment"]).agg(partAcum=("partAcum", "last"), sector=(SECTOR, "first"))
    labels["absent"] = labels["partAcum"].isna()
    by_sector = labels.reset_index().groupby([RAW_DATE, "sector"]).agg(partAcum=("partAcum", "sum"),
                                                                        absent=("absent", "any"))
    return by_sector["partAcum"].mask(by_sector["absent"]).rename_axis([DATE, SECTOR])


def refined_matches_raw(raw: pd.DataFrame, refined: pd.DataFrame,
                        tolerance: float = SECTOR_SUBTOTAL_TOLERANCE,
                        mapping: pd.DataFrame | None = None) -> list[tuple[str, CheckOutcome]]:
    """Refined rows against the raw rows they came from: ticker counts, B3's sector subtotals, one row per key.
    ``mapping`` (DataCarteira, cod, Setor): the canonical sector of each raw row; B3's subtotals are then compared
    per canonical sector (``canonical_subtotals``)."""
    outcomes = []
    raw_count = len(raw)
    refined_count = int(refined[TICKER_COUNT].sum()) if not refined.empty else 0
    outcomes.append(("ticker_count_matches_raw", CheckOutcome(
        refined_count == raw_count and raw_count > 0,
        f"refined counts {refined_count} tickers; raw has {raw_count} rows",
        {"refined_tickers": refined_count, "raw_rows": raw_count})))

    subtotals = canonical_subtotals(raw, mapping)
    joined = refined.set_index([DATE, SECTOR])[PART_SUM].to_frame().join(subtotals, how="outer")
    comparable = joined.dropna()
    missing = joined[joined[PART_SUM].isna()]
    bad = comparable[(comparable[PART_SUM] - comparable["partAcum"]).abs() > tolerance]
    without_subtotal = sorted({str(day) for day, _ in subtotals[subtotals.isna()].index})
    if comparable.empty and missing.empty:  # e.g. a standard CSV day: B3 published no partAcum to compare with
        outcomes.append(("sector_part_matches_b3_subtotal", CheckOutcome.skip(
            NO_SUBTOTAL_REASON, {"sectors_compared": 0, "days_without_subtotal": without_subtotal})))
    else:
        outcomes.append(("sector_part_matches_b3_subtotal", CheckOutcome(
            bad.empty and missing.empty,
            "each sector's soma_part equals B3's partAcum" if bad.empty and missing.empty
            else f"{len(bad)} sector(s) off B3's partAcum; {len(missing)} raw sector(s) missing from refined",
            {"sectors_compared": len(comparable),
             "max_difference": round(float((comparable[PART_SUM] - comparable["partAcum"]).abs().max()), 6)
             if not comparable.empty else None,
             "disagreeing": [f"{day} {sector}" for day, sector in bad.index[:10]],
             # days of the run whose sectors B3 gave no subtotal for (standard CSV days) are left out of the comparison
             "days_without_subtotal": without_subtotal})))

    if refined.empty:
        outcomes.append(("one_row_per_sector_and_day", CheckOutcome.skip("there are no refined rows to check",
                                                                         {"rows": 0})))
    else:
        duplicated = refined[refined.duplicated([DATE, SECTOR], keep=False)]
        outcomes.append(("one_row_per_sector_and_day", CheckOutcome(
            duplicated.empty, "one row per (Data, Setor)" if duplicated.empty
            else f"{len(duplicated)} rows repeat a (Data, Setor)", {"rows": len(refined)})))
    return outcomes


def raw_outcomes(snapshots: list[PortfolioSnapshot]) -> list[tuple[str, CheckOutcome]]:
    """Every raw rule, over one or more days."""
    rows = pd.concat([s.rows for s in snapshots], ignore_index=True)
    quantities = [theoretical_quantity_matches_header(s) for s in snapshots]
    failing = [o for o in quantities if o.failed]
    compared = [o for o in quantities if not o.skipped]
    quantity = failing[0] if failing else compared[0] if compared else quantities[0]
    return [
        ("weights_sum_to_100", weights_sum_to_100(rows)),
        ("positive_weights_and_quantities", positive_weights_and_quantities(rows)),
        ("sector_subtotals_match_b3", sector_subtotals_match_b3(rows)),
        ("no_duplicate_tickers", no_duplicate_tickers(rows)),
        ("no_empty_sectors", no_empty_sectors(rows)),
        ("theoretical_quantity_matches_header", quantity),
    ]


# ---------------------------------------------------------------------------------------------------------------------
# The index history (ibov_refined): rules over the refined rows (exposed as asset checks in defs/index/assets.py),
# and the anomaly score's reproducibility.
# ---------------------------------------------------------------------------------------------------------------------
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


def check_reproducible(refined: pd.DataFrame, result: AnomalyResult) -> CheckOutcome:
    """Fitting again on the same rows with the same settings gives the same scores and flags, day by day."""
    again = score_anomalies(refined, result.settings).scores
    same_days = list(again[DATA]) == list(result.scores[DATA])
    same_scores = same_days and np.array_equal(again[ANOMALY_SCORE].to_numpy(),
                                               result.scores[ANOMALY_SCORE].to_numpy())
    same_flags = same_days and np.array_equal(again[ANOMALY_FLAG].to_numpy(), result.scores[ANOMALY_FLAG].to_numpy())
    passed = same_days and same_scores and same_flags
    worst = (float(np.max(np.abs(again[ANOMALY_SCORE].to_numpy() - result.scores[ANOMALY_SCORE].to_numpy())))
             if same_days and len(again) else None)
    return CheckOutcome(passed, f"a second fit with random_state={result.settings.random_state} reproduces all "
                                f"{len(again)} scores and flags exactly" if passed else
                        f"a second fit differs: same days {same_days}, same scores {same_scores}, same flags "
                        f"{same_flags}", {"days": len(again), "max_score_difference": worst,
                                          "random_state": result.settings.random_state})
