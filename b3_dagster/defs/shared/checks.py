"""Check specs and results from the pure rules' ``CheckOutcome``: shared by every concern."""

from typing import Any, Iterable, Optional, Sequence

import dagster as dg

from b3_dagster.rules.indices import Skipped
from b3_dagster.rules.quality import CheckOutcome
from b3_dagster.rules.sector_quality import WARN_CHECKS


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


def _selected_checks(asset: str) -> Optional[set[str]]:
    """The check names of ``asset`` that the running step selected (an ``asset_with_checks`` can run a subset);
    None outside a run (direct invocation in tests)."""
    try:
        context = dg.AssetExecutionContext.get()
    except Exception:  # noqa: BLE001 (no run in progress)
        return None
    return {key.name for key in context.selected_asset_check_keys if key.asset_key == dg.AssetKey(asset)}


def check_results(asset: str, outcomes: Iterable[tuple[str, CheckOutcome]]) -> list[dg.AssetCheckResult]:
    """The results of the evaluated rules that the run selected; skipped rules are left out (Dagster then shows them
    as skipped)."""
    selected = _selected_checks(asset)
    return [result(asset, name, outcome) for name, outcome in outcomes
            if outcome.skipped is None and (selected is None or name in selected)]


def skipped_metadata(outcomes: Iterable[tuple[str, CheckOutcome]]) -> dict[str, dg.MetadataValue]:
    """``skipped_checks``: each skipped rule with its reason, for the materialisation's metadata ("none" if none)."""
    skipped = {name: outcome.skipped for name, outcome in outcomes if outcome.skipped is not None}
    text = "\n".join(f"- **{name}**: {reason}" for name, reason in skipped.items()) if skipped else "none"
    return {"skipped_checks": dg.MetadataValue.md(text)}


def combine_outcomes(name: str, outcomes: list[CheckOutcome | Skipped]) -> CheckOutcome:
    """One verdict over many years: failed if any failed, passed if the others passed, skipped if none was judged."""
    judged = [o for o in outcomes if isinstance(o, CheckOutcome) and o.skipped is None]
    skipped = [o.reason if isinstance(o, Skipped) else o.skipped for o in outcomes
               if isinstance(o, Skipped) or o.skipped is not None]
    if not judged:
        return CheckOutcome.skip("; ".join(skipped[:5]) or f"{name}: nothing to check",
                                 {"skipped_years": len(skipped)})
    failed = [o.description for o in judged if not o.passed]
    return CheckOutcome(not failed, ("; ".join(failed[:5]) if failed else
                                     f"{len(judged)} year(s) checked: " + "; ".join(o.description for o in judged[:3])
                                     + (" ..." if len(judged) > 3 else "")),
                        {"years_checked": len(judged), "years_failed": len(failed), "years_skipped": len(skipped),
                         "skipped_reasons": skipped[:20]})


def warn_result(asset: str, name: str, outcome: CheckOutcome) -> dg.AssetCheckResult:
    metadata = {key: (value if isinstance(value, (str, int, float, bool)) else dg.MetadataValue.json(value))
                for key, value in outcome.metadata.items() if value is not None}
    return dg.AssetCheckResult(asset_key=asset, check_name=name, passed=bool(outcome.passed),
                               severity=dg.AssetCheckSeverity.WARN, description=outcome.description,
                               metadata={**metadata, "summary": outcome.description})


def check_selected(asset: str, name: str) -> bool:
    try:
        context = dg.AssetExecutionContext.get()
    except Exception:  # noqa: BLE001 (no run in progress: direct invocation)
        return True
    return dg.AssetCheckKey(dg.AssetKey(asset), name) in context.selected_asset_check_keys
