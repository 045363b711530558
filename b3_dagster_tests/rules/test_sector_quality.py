"""Sector rules over the canonical dimension: the real downloads pass; hand-made faults are named."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from b3_dagster.storage.history_import import import_files, shipped_dimension
from b3_dagster.rules.sector_quality import (
    canonical_sectors_sum_to_100,
    every_ticker_placed,
    portfolio_changes,
    rebalanced_between,
    sector_outcomes,
    sector_shares,
    subsector_share_jumps,
)
from b3_dagster.storage.lake import LocalLake
from b3_dagster.storage.portfolio_store import PortfolioStore
from b3_dagster.transforms.sector_dimension import canonical_rows, map_sectors

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "b3_csv"


@pytest.fixture
def real_raw(lake_root) -> pd.DataFrame:
    """The raw rows of all 23 real downloads, imported as the importer does it."""
    store = PortfolioStore(LocalLake(lake_root))
    outcomes = import_files(sorted(FIXTURES.glob("csv*/IBOVDia_*.csv")), store)
    assert all(outcome.ok for outcome in outcomes)
    return pd.concat([store.read_raw(day).rows for day in store.raw_days()], ignore_index=True)


def test_the_real_history_passes_every_sector_rule(real_raw):
    dimension = shipped_dimension()
    mapping = map_sectors(real_raw, dimension)
    outcomes = dict(sector_outcomes(real_raw, mapping, canonical_rows(real_raw, dimension)))
    assert all(outcome.passed for outcome in outcomes.values()), outcomes
    assert outcomes["canonical_sectors_sum_to_100"].metadata["days"] == 23
    assert outcomes["every_ticker_placed"].metadata["rows"] == len(real_raw)
    jumps = outcomes["subsector_share_jumps"]
    assert not jumps.description.startswith("skipped")  # 2025-07-10 -> 2025-07-11 are consecutive sessions
    assert jumps.metadata["pairs_compared"] == 1 and jumps.metadata["pairs_not_consecutive"] == 21


def shares(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame([(dt.date.fromisoformat(day), sector, part) for day, sector, part in rows],
                        columns=["Data", "Setor", "soma_part"])


def test_a_day_whose_sectors_do_not_add_up_is_named():
    outcome = canonical_sectors_sum_to_100(shares([("2025-07-10", "A", 60.0), ("2025-07-10", "B", 40.0),
                                                   ("2025-07-11", "A", 60.0), ("2025-07-11", "B", 39.5)]))
    assert not outcome.passed and outcome.metadata["days_off"] == {"2025-07-11": 99.5}
    assert "2025-07-11" in outcome.description


def test_a_jump_between_consecutive_sessions_names_both_sessions():
    outcome = subsector_share_jumps(shares([("2025-07-10", "A", 60.0), ("2025-07-10", "B", 40.0),
                                            ("2025-07-11", "A", 63.0), ("2025-07-11", "B", 37.0)]), max_jump=2.0)
    assert not outcome.passed and len(outcome.metadata["jumps"]) == 2
    assert "A: 60.000% on 2025-07-10 -> 63.000% on 2025-07-11 (+3.000 points)" in outcome.metadata["jumps"]
    assert subsector_share_jumps(shares([("2025-07-10", "A", 60.0), ("2025-07-11", "A", 63.0)]), max_jump=5).passed


def test_a_sector_that_disappears_counts_as_a_jump_to_zero():
    outcome = subsector_share_jumps(shares([("2025-07-10", "A", 95.0), ("2025-07-10", "B", 5.0),
                                            ("2025-07-11", "A", 100.0)]))
    assert not outcome.passed and any("B: 5.000% on 2025-07-10 -> 0.000%" in jump for jump in outcome.metadata["jumps"])


def test_a_rebalance_in_between_excuses_the_jump():
    assert rebalanced_between(dt.date(2025, 4, 30), dt.date(2025, 5, 2))  # May 1st is a holiday: consecutive
    assert not rebalanced_between(dt.date(2025, 7, 10), dt.date(2025, 7, 11))
    outcome = subsector_share_jumps(shares([("2025-04-30", "A", 60.0), ("2025-05-02", "A", 70.0)]))
    assert outcome.skipped and not outcome.passed and outcome.description.startswith("skipped:") and outcome.metadata["pairs_rebalanced"] == 1
    changed = subsector_share_jumps(shares([("2025-07-10", "A", 60.0), ("2025-07-11", "A", 70.0)]),
                                    changed_days=[dt.date(2025, 7, 11)])
    assert changed.skipped and changed.metadata["skipped"]


def test_days_that_are_not_consecutive_sessions_are_not_compared():
    outcome = subsector_share_jumps(shares([("2025-07-07", "A", 60.0), ("2025-07-10", "A", 70.0)]))
    assert outcome.skipped and outcome.metadata["skipped"] and outcome.metadata["pairs_not_consecutive"] == 1
    single = subsector_share_jumps(shares([("2025-07-07", "A", 100.0)]))
    assert single.metadata["skipped"] and "fewer than two sessions" in single.description


def test_portfolio_changes_sees_new_tickers_and_quantities(real_raw):
    changed = portfolio_changes(real_raw)
    # the three July 2025 files share one portfolio (same quantities); the last March 2026 files do not
    assert dt.date(2025, 7, 10) not in changed and dt.date(2025, 7, 11) not in changed
    assert dt.date(2026, 3, 24) in changed


def test_an_unplaceable_ticker_fails_with_day_and_ticker(real_raw):
    day = dt.date(2025, 7, 11)
    raw = real_raw[real_raw["DataCarteira"] == day].copy()
    raw.loc[raw["cod"] == "PETR4", ["cod", "segment"]] = ["ZZZZ4", "Novo Setor"]  # hand-made fault
    dimension = shipped_dimension()
    mapping = map_sectors(raw, dimension)
    outcome = every_ticker_placed(mapping, raw)
    assert not outcome.passed and outcome.metadata["unplaced_rows"] == 1
    assert "2025-07-11: label 'Novo Setor' cannot be placed" in outcome.description and "ZZZZ4" in outcome.description
    sums = canonical_sectors_sum_to_100(sector_shares(canonical_rows(raw, dimension, strict=False)))
    assert not sums.passed and "2025-07-11" in sums.description


def test_nothing_to_check_is_skipped_not_passed():
    empty = pd.DataFrame(columns=["Data", "Setor", "soma_part"])
    assert canonical_sectors_sum_to_100(empty).description.startswith("skipped:")
