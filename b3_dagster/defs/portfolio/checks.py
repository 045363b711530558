"""The portfolio assets' keys and their check specs (the rules of ``b3_dagster.rules``)."""




RAW_ASSET = "ibov_raw_snapshot"
REFINED_ASSET = "ibov_sector_refined"
TABLE_ASSET = "tb_ibov_refined"

RAW_CHECKS = {
    "weights_sum_to_100": "The day's IBOV weights (part) sum to 100% within B3's rounding.",
    "positive_weights_and_quantities": "Every weight (part) and theoretical quantity is greater than 0.",
    "sector_subtotals_match_b3": "Each sector's weights add up to B3's own sector subtotal (partAcum).",
    "no_duplicate_tickers": "No ticker appears twice in a day's portfolio.",
    "no_empty_sectors": "Every ticker has a sector.",
    "theoretical_quantity_matches_header": "Theoretical quantities add up to B3's header total.",
}
REFINED_CHECKS = {
    "ticker_count_matches_raw": "Refined total_codigo adds up to the raw row count.",
    "sector_part_matches_b3_subtotal": "Each sector's soma_part equals B3's partAcum of that sector.",
    "one_row_per_sector_and_day": "No duplicate (Data, Setor) rows.",
}
# The canonical sector dimension's rules (b3_dagster/rules/sector_quality.py), on the refine asset too.
SECTOR_CHECKS = {
    "canonical_sectors_sum_to_100": "Each day's canonical sectors (Setor) add up to 100% of the index.",
    "every_ticker_placed": "Every ticker of raw is placed in a canonical sector by B3's classification; a label or "
                           "ticker that no vintage can place fails, named with its day (never a new sector).",
    "subsector_share_jumps": "WARN: a subsector's share moves by at most 2 points between consecutive B3 sessions "
                             "unless the portfolio was rebalanced (January, May, September, or a change of tickers "
                             "or quantities); the sessions are named.",
}
TABLE_CHECKS = {
    "table_answers_query": "After the update, the catalogued table answers SQL with the refined rows of the day.",
}


MEMBERSHIP_RAW_ASSET = "index_membership_raw"
MEMBERSHIP_ASSET = "index_membership"
PORTFOLIOS_ASSET = "index_portfolios"
PORTFOLIO_RAW_ASSET = "index_portfolio_raw"


MEMBERSHIP_CHECKS = {
    "membership_matches_portfolios": "The members GetStockIndex lists for an index equal that index's portfolio of "
                                     "the same day, wherever a portfolio of that day is stored (skipped where none).",
}
