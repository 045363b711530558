"""The data-quality rules as pure functions: none passes after comparing nothing (it is skipped, with the reason),
and a weight or quantity of zero or less fails, naming the ticker."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from b3_dagster.model import DATE, PART_SUM, SECTOR, TICKER_COUNT, PortfolioSnapshot
from b3_dagster.rules.quality import (
    NO_SUBTOTAL_REASON,
    CheckOutcome,
    no_duplicate_tickers,
    no_empty_sectors,
    positive_weights_and_quantities,
    raw_outcomes,
    refined_matches_raw,
    sector_subtotals_match_b3,
    theoretical_quantity_matches_header,
    weights_sum_to_100,
)
from b3_dagster.sources.b3_portfolio import rows_to_frame

DAY = dt.date(2025, 4, 28)
OTHER_DAY = dt.date(2025, 4, 29)


def raw(day=DAY, with_subtotal=True, parts=(60.0, 40.0), quantities=(10, 20)) -> pd.DataFrame:
    rows = [{"segment": sector, "cod": cod, "asset": cod, "type": "ON", "part": part,
             "partAcum": part if with_subtotal else None, "theoricalQty": qty, "DataCarteira": day}
            for sector, cod, part, qty in zip(("Energia", "Bancos"), ("PETR4", "ITUB4"), parts, quantities)]
    return rows_to_frame(rows)


def refined_of(frame: pd.DataFrame) -> pd.DataFrame:
    grouped = frame.groupby(["DataCarteira", "segment"], as_index=False).agg(part=("part", "sum"), n=("cod", "count"))
    return pd.DataFrame({DATE: grouped["DataCarteira"], SECTOR: grouped["segment"], PART_SUM: grouped["part"],
                         TICKER_COUNT: grouped["n"]})


def test_a_skipped_outcome_is_neither_passed_nor_failed():
    outcome = CheckOutcome.skip("nothing to compare")
    assert not outcome.passed and not outcome.failed
    assert outcome.description == "skipped: nothing to compare" and outcome.skipped == "nothing to compare"
    assert CheckOutcome(False, "broken").failed and not CheckOutcome(True, "fine").failed


def test_b3_subtotals_missing_on_a_standard_csv_day_skip_the_raw_subtotal_rule():
    outcome = sector_subtotals_match_b3(raw(with_subtotal=False))
    assert outcome.skipped == NO_SUBTOTAL_REASON and not outcome.passed
    assert sector_subtotals_match_b3(raw()).passed


def test_no_header_total_skips_the_quantity_rule():
    frame = raw()
    snapshot = PortfolioSnapshot(DAY, frame, reductor=None, theoretical_qty_total=None, source="test")
    assert theoretical_quantity_matches_header(snapshot).skipped
    outcomes = dict(raw_outcomes([snapshot]))
    assert outcomes["theoretical_quantity_matches_header"].skipped
    assert not any(outcome.failed for outcome in outcomes.values())


@pytest.mark.parametrize("rule", [no_duplicate_tickers, no_empty_sectors, positive_weights_and_quantities])
def test_rules_over_no_rows_are_skipped_not_passed(rule):
    outcome = rule(raw().iloc[0:0])
    assert outcome.skipped == "there are no rows to check" and not outcome.passed


def test_weights_over_no_rows_fail():
    assert weights_sum_to_100(raw().iloc[0:0]).failed  # an empty portfolio does not sum to 100


@pytest.mark.parametrize(("parts", "quantities", "ticker"),
                         [((100.0, 0.0), (10, 20), "ITUB4"), ((110.0, -10.0), (10, 20), "ITUB4"),
                          ((60.0, 40.0), (0, 20), "PETR4"), ((60.0, 40.0), (10, -5), "ITUB4")],
                         ids=["zero-weight", "negative-weight", "zero-quantity", "negative-quantity"])
def test_a_weight_or_quantity_of_zero_or_less_fails_naming_the_ticker(parts, quantities, ticker):
    frame = raw(parts=parts, quantities=quantities)
    outcome = positive_weights_and_quantities(frame)
    assert outcome.failed and ticker in outcome.description
    assert outcome.metadata["not_positive"] == [ticker]
    assert weights_sum_to_100(frame).passed, "the total alone does not catch it"
    assert "positive_weights_and_quantities" in [name for name, o in raw_outcomes(
        [PortfolioSnapshot(DAY, frame, None, sum(quantities), "test")]) if o.failed]


def test_refined_subtotal_check_is_skipped_on_a_standard_csv_day():
    frame = raw(with_subtotal=False)
    outcomes = dict(refined_matches_raw(frame, refined_of(frame)))
    assert outcomes["sector_part_matches_b3_subtotal"].skipped == NO_SUBTOTAL_REASON
    assert outcomes["sector_part_matches_b3_subtotal"].metadata["days_without_subtotal"] == [str(DAY)]
    assert outcomes["ticker_count_matches_raw"].passed and outcomes["one_row_per_sector_and_day"].passed


def test_refined_subtotal_check_compares_the_days_that_have_subtotals_and_names_the_others():
    frame = pd.concat([raw(), raw(day=OTHER_DAY, with_subtotal=False)], ignore_index=True)
    outcome = dict(refined_matches_raw(frame, refined_of(frame)))["sector_part_matches_b3_subtotal"]
    assert outcome.passed and outcome.metadata["sectors_compared"] == 2
    assert outcome.metadata["days_without_subtotal"] == [str(OTHER_DAY)]


def test_no_refined_rows_fail_the_count_and_skip_the_duplicate_rule():
    frame = raw()
    outcomes = dict(refined_matches_raw(frame, refined_of(frame).iloc[0:0]))
    assert outcomes["ticker_count_matches_raw"].failed
    assert outcomes["sector_part_matches_b3_subtotal"].failed  # raw sectors missing from refined
    assert outcomes["one_row_per_sector_and_day"].skipped


def test_refined_subtotal_check_compares_each_canonical_sector_with_the_b3_subtotals_of_its_labels():
    """Two source labels placed in one canonical sector: B3's partAcum of both add up to that sector's soma_part."""
    frame = raw()
    mapping = pd.DataFrame({"DataCarteira": [DAY, DAY], "cod": ["PETR4", "ITUB4"],
                            SECTOR: ["Financeiro / Bancos"] * 2})
    refined = pd.DataFrame({DATE: [DAY], SECTOR: ["Financeiro / Bancos"], PART_SUM: [100.0], TICKER_COUNT: [2]})
    outcomes = dict(refined_matches_raw(frame, refined, mapping=mapping))
    assert outcomes["sector_part_matches_b3_subtotal"].passed
    assert outcomes["sector_part_matches_b3_subtotal"].metadata["sectors_compared"] == 1
    off = dict(refined_matches_raw(frame, refined.assign(**{PART_SUM: 99.0}), mapping=mapping))
    assert off["sector_part_matches_b3_subtotal"].failed
    assert off["sector_part_matches_b3_subtotal"].metadata["disagreeing"] == [f"{DAY} Financeiro / Bancos"]
    # per source label, the canonical rows would not even meet B3's labels: that is what the mapping is for
    assert dict(refined_matches_raw(frame, refined))["sector_part_matches_b3_subtotal"].failed
