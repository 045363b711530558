"""Asset checks of the portfolio: the rules of ``b3_dagster.quality`` as Dagster check specs and results.

The checks run inside the asset that writes the data, on what was written (read back from storage), so each
materialisation carries its own verdict and a blocking raw check stops bad data before it is refined.
"""

from __future__ import annotations

import dagster as dg

from b3_dagster.quality import CheckOutcome

RAW_ASSET = "ibov_raw_snapshot"
REFINED_ASSET = "ibov_sector_refined"
TABLE_ASSET = "tb_ibov_refined"

RAW_CHECKS = {
    "weights_sum_to_100": "The day's IBOV weights (part) sum to 100% within B3's rounding.",
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
TABLE_CHECKS = {
    "table_answers_query": "After the update, the catalogued table answers SQL with the refined rows of the day.",
}


def specs(asset: str, checks: dict[str, str], blocking: bool = False) -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec(name=name, asset=asset, description=text, blocking=blocking)
            for name, text in checks.items()]


def result(asset: str, name: str, outcome: CheckOutcome) -> dg.AssetCheckResult:
    metadata = {key: value for key, value in outcome.metadata.items() if value is not None}
    metadata["summary"] = outcome.description
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=name,
        passed=bool(outcome.passed),
        severity=dg.AssetCheckSeverity.ERROR,
        description=outcome.description,
        metadata={k: (v if isinstance(v, (str, int, float, bool)) else dg.MetadataValue.json(v))
                  for k, v in metadata.items()},
    )
