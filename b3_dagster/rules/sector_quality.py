"""Data-quality rules of the canonical sector dimension, as pure functions (Dagster turns them into asset checks).

They return ``quality.CheckOutcome``. A rule with nothing to compare returns ``CheckOutcome.skip`` (neither passed nor
failed; its description starts with "skipped:" and ``metadata["skipped"] = True``), never a bare pass.

* ``canonical_sectors_sum_to_100``: each day's canonical sectors add up to the whole index (a row lost in the
  mapping would show here);
* ``every_ticker_placed``: no label or ticker that no classification vintage can place (day and label/ticker named);
* ``subsector_share_jumps``: a subsector's share does not move by more than ``max_jump`` points between consecutive
  B3 sessions unless the portfolio was rebalanced in between (B3's quarterly-ish rebalances take effect in the first
  week of January, May and September; a change of tickers or of the total theoretical quantity in the data counts
  too). Meant as a WARN-severity check: prices move shares, a jump is worth a look, not a stop.
"""

from __future__ import annotations

import datetime as dt
from typing import Iterable

import pandas as pd

from b3_dagster.calendar import sessions
from b3_dagster.model import DATE, PART_SUM, RAW_DATE_COLUMN, SECTOR
from b3_dagster.rules.quality import WEIGHT_TOTAL_TOLERANCE, CheckOutcome
from b3_dagster.transforms.sector_dimension import SectorMapping

REBALANCE_MONTHS = (1, 5, 9)
REBALANCE_WINDOW_DAYS = 7  # the new portfolio takes effect on the first Monday of the month: within its first week
DEFAULT_MAX_JUMP = 2.0  # percentage points of the index between two consecutive sessions
LISTED = 20  # how many offenders metadata lists
# Rules whose failure is a warning (a thing to look at, not a stop): Dagster reports them with WARN severity.
WARN_CHECKS = {"subsector_share_jumps"}


def _skipped(reason: str, **metadata) -> CheckOutcome:
    return CheckOutcome.skip(reason, {"skipped": True, **metadata})


def sector_shares(rows: pd.DataFrame) -> pd.DataFrame:
    """Canonical rows (raw + ``Setor``, e.g. from ``sector_dimension.canonical_rows``) -> (Data, Setor, soma_part)."""
    placed = rows[rows[SECTOR].notna()]
    shares = (placed.groupby([RAW_DATE_COLUMN, SECTOR], as_index=False)["part"].sum()
              .rename(columns={RAW_DATE_COLUMN: DATE, "part": PART_SUM}))
    return shares.sort_values([DATE, SECTOR]).reset_index(drop=True)


def canonical_sectors_sum_to_100(shares: pd.DataFrame, tolerance: float = WEIGHT_TOTAL_TOLERANCE) -> CheckOutcome:
    """``shares``: (Data, Setor, soma_part), the refined table's shape."""
    if shares.empty:
        return _skipped("no sector shares to add up")
    totals = shares.groupby(DATE)[PART_SUM].sum()
    off = {str(day): round(float(total), 6) for day, total in totals.items() if abs(total - 100.0) > tolerance}
    return CheckOutcome(
        not off,
        "each day's canonical sectors add up to 100%" if not off
        else f"canonical sectors do not add up to 100% (±{tolerance}) on {len(off)} day(s): {sorted(off)[:5]}",
        {"days": len(totals), "sectors": int(shares[SECTOR].nunique()), "days_off": dict(list(off.items())[:LISTED])},
    )


def every_ticker_placed(mapping: SectorMapping, raw: pd.DataFrame) -> CheckOutcome:
    """Every raw row has a canonical sector, and no label or ticker is outside every classification vintage."""
    if raw.empty:
        return _skipped("no raw rows to place")
    unplaced_rows = len(raw) - len(mapping.rows)
    passed = not mapping.problems and unplaced_rows == 0
    return CheckOutcome(
        passed,
        f"all {len(raw)} tickers placed in a canonical sector" if passed
        else f"{len(mapping.problems)} label(s)/ticker(s) no classification vintage can place; "
             f"{unplaced_rows} row(s) without a sector: {'; '.join(mapping.problems[:3])}",
        {"rows": len(raw), "unplaced_rows": unplaced_rows, "problems": list(mapping.problems[:LISTED]),
         "notes": list(mapping.notes[:LISTED]),
         "placed_by": mapping.placements["how"].value_counts().to_dict() if not mapping.placements.empty else {}},
    )


def rebalanced_between(before: dt.date, after: dt.date) -> bool:
    """True when a B3 rebalance (first week of January, May or September) falls in (before, after]."""
    day = before + dt.timedelta(days=1)
    while day <= after:
        if day.month in REBALANCE_MONTHS and day.day <= REBALANCE_WINDOW_DAYS:
            return True
        day += dt.timedelta(days=1)
    return False


def portfolio_changes(raw: pd.DataFrame) -> set[dt.date]:
    """Days whose tickers or total theoretical quantity differ from the previous day in ``raw`` (a rebalance or a
    corporate event: both move shares on purpose)."""
    changed = set()
    previous = None
    for day, rows in raw.groupby(RAW_DATE_COLUMN, sort=True):
        signature = (frozenset(rows["cod"]), int(rows["theoricalQty"].sum()))
        if previous is not None and signature != previous:
            changed.add(day)
        previous = signature
    return changed


def subsector_share_jumps(shares: pd.DataFrame, max_jump: float = DEFAULT_MAX_JUMP,
                          changed_days: Iterable[dt.date] = ()) -> CheckOutcome:
    """A subsector's share moves by at most ``max_jump`` points between consecutive B3 sessions present in
    ``shares`` (Data, Setor, soma_part), unless the portfolio was rebalanced in between (calendar, or a day in
    ``changed_days``, e.g. from ``portfolio_changes``). Day pairs that are not consecutive sessions are not compared."""
    days = sorted(set(shares[DATE])) if not shares.empty else []
    if len(days) < 2:
        return _skipped("fewer than two sessions to compare", days=len(days))
    changed = set(changed_days)
    table = shares.pivot_table(index=DATE, columns=SECTOR, values=PART_SUM, aggfunc="sum").fillna(0.0)
    jumps, compared, rebalanced, gaps = [], 0, 0, 0
    for before, after in zip(days, days[1:]):
        if sessions(before, after) != [before, after]:
            gaps += 1
            continue
        if rebalanced_between(before, after) or after in changed:
            rebalanced += 1
            continue
        compared += 1
        moves = (table.loc[after] - table.loc[before]).round(3)
        for sector, move in moves[moves.abs() > max_jump].items():
            jumps.append(f"{sector}: {table.loc[before, sector]:.3f}% on {before} -> {table.loc[after, sector]:.3f}% "
                         f"on {after} ({move:+.3f} points)")
    metadata = {"pairs_compared": compared, "pairs_rebalanced": rebalanced, "pairs_not_consecutive": gaps,
                "max_jump_points": max_jump, "jumps": jumps[:LISTED]}
    if not compared:
        return _skipped(f"no two consecutive B3 sessions without a rebalance between them ({gaps} pair(s) not "
                        f"consecutive, {rebalanced} across a rebalance)", **metadata)
    return CheckOutcome(
        not jumps,
        f"no subsector moved more than {max_jump} points between {compared} pair(s) of consecutive sessions"
        if not jumps else f"{len(jumps)} subsector move(s) above {max_jump} points without a rebalance: {jumps[0]}",
        metadata,
    )


def sector_outcomes(raw: pd.DataFrame, mapping: SectorMapping, rows: pd.DataFrame,
                    max_jump: float = DEFAULT_MAX_JUMP) -> list[tuple[str, CheckOutcome]]:
    """Every sector rule over raw rows, their mapping and the canonical rows (``canonical_rows(..., strict=False)``)."""
    shares = sector_shares(rows)
    return [
        ("canonical_sectors_sum_to_100", canonical_sectors_sum_to_100(shares)),
        ("every_ticker_placed", every_ticker_placed(mapping, raw)),
        ("subsector_share_jumps", subsector_share_jumps(shares, max_jump, portfolio_changes(raw))),
    ]
