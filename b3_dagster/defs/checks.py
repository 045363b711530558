"""Asset checks of the portfolio: the rules of ``b3_dagster.quality`` as Dagster check specs and results.

The checks run inside the asset that writes the data, on what was written (read back from storage), so each
materialisation carries its own verdict and a blocking raw check stops bad data before it is refined.

A rule with nothing to compare (``CheckOutcome.skipped``) is never reported as passed: ``check_results`` leaves it
out of the materialisation, and Dagster shows a declared check that a successful run did not evaluate as
*Skipped* (its execution record stays ``PLANNED`` and resolves to ``SKIPPED`` once the run has succeeded). The
reason goes into the materialisation's metadata (``skipped_checks``), since Dagster has no field for it.

Dagster 1.13 lets a check result be left out only when the check's output is optional, which ``@dg.asset`` never
makes it (it fixes ``can_subset=False``), and only when the ``MaterializeResult`` is yielded (a returned one must
carry every declared check). So an asset whose rules can be skipped is declared with ``asset_with_checks`` (the
``@dg.asset`` arguments, built as a one-asset ``multi_asset`` with ``can_subset=True``) and yields its result.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

import dagster as dg

from b3_dagster.quality import CheckOutcome

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
# The canonical sector dimension's rules (b3_dagster/sector_rules.py), on the refine asset too.
SECTOR_CHECKS = {
    "canonical_sectors_sum_to_100": "Each day's canonical sectors (Setor) add up to 100% of the index.",
    "every_ticker_placed": "Every ticker of raw is placed in a canonical sector by B3's classification; a label or "
                           "ticker that no vintage can place fails, named with its day (never a new sector).",
    "subsector_share_jumps": "WARN: a subsector's share moves by at most 2 points between consecutive B3 sessions "
                             "unless the portfolio was rebalanced (January, May, September, or a change of tickers "
                             "or quantities); the sessions are named.",
}
# Checks whose failure is a warning (a thing to look at, not a stop).
WARN_CHECKS = {"subsector_share_jumps"}
TABLE_CHECKS = {
    "table_answers_query": "After the update, the catalogued table answers SQL with the refined rows of the day.",
}


def asset_with_checks(*, key: str, check_specs: Sequence[dg.AssetCheckSpec], group_name: Optional[str] = None,
                      partitions_def: Optional[dg.PartitionsDefinition] = None, deps: Sequence[Any] = (),
                      backfill_policy: Optional[dg.BackfillPolicy] = None, kinds: Optional[set[str]] = None,
                      description: Optional[str] = None, pool: Optional[str] = None):
    """``@dg.asset`` with these arguments, except that a skipped check may be left out of its (yielded) result."""
    return dg.multi_asset(
        name=key,
        specs=[dg.AssetSpec(key=key, group_name=group_name, deps=list(deps), kinds=kinds, description=description)],
        check_specs=list(check_specs),
        partitions_def=partitions_def,
        backfill_policy=backfill_policy,
        can_subset=True,
        pool=pool,
    )


def specs(asset: str, checks: dict[str, str], blocking: bool = False) -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec(name=name, asset=asset, description=text, blocking=blocking)
            for name, text in checks.items()]


def result(asset: str, name: str, outcome: CheckOutcome) -> dg.AssetCheckResult:
    """The Dagster result of an evaluated rule. A skipped rule has no result: use ``check_results``."""
    if outcome.skipped is not None:
        raise ValueError(f"check {name} of {asset} was skipped ({outcome.skipped}): report it with check_results, "
                         "which leaves it out so that Dagster shows it as skipped")
    metadata = {key: value for key, value in outcome.metadata.items() if value is not None}
    metadata["summary"] = outcome.description
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=name,
        passed=bool(outcome.passed),
        severity=dg.AssetCheckSeverity.WARN if name in WARN_CHECKS else dg.AssetCheckSeverity.ERROR,
        description=outcome.description,
        metadata={k: (v if isinstance(v, (str, int, float, bool)) else dg.MetadataValue.json(v))
                  for k, v in metadata.items()},
    )


def check_results(asset: str, outcomes: Iterable[tuple[str, CheckOutcome]]) -> list[dg.AssetCheckResult]:
    """The results of the evaluated rules that the run selected; skipped rules are left out (Dagster then shows them
    as skipped)."""
    selected = _selected_checks(asset)
    return [result(asset, name, outcome) for name, outcome in outcomes
            if outcome.skipped is None and (selected is None or name in selected)]


def _selected_checks(asset: str) -> Optional[set[str]]:
    """The check names of ``asset`` that the running step selected (an ``asset_with_checks`` can run a subset);
    None outside a run (direct invocation in tests)."""
    try:
        context = dg.AssetExecutionContext.get()
    except Exception:  # noqa: BLE001 (no run in progress)
        return None
    return {key.name for key in context.selected_asset_check_keys if key.asset_key == dg.AssetKey(asset)}


def skipped_metadata(outcomes: Iterable[tuple[str, CheckOutcome]]) -> dict[str, dg.MetadataValue]:
    """``skipped_checks``: each skipped rule with its reason, for the materialisation's metadata ("none" if none)."""
    skipped = {name: outcome.skipped for name, outcome in outcomes if outcome.skipped is not None}
    text = "\n".join(f"- **{name}**: {reason}" for name, reason in skipped.items()) if skipped else "none"
    return {"skipped_checks": dg.MetadataValue.md(text)}
