"""defs/shared/failures.py: the one place where project errors become Dagster failures, for every asset of both pipelines:
one clear paragraph, whether a retry helps (metadata and the retry policy), no traceback of the library code."""

from __future__ import annotations

import dagster as dg
import pytest

from b3_dagster.defs.index import assets as index_assets
from b3_dagster.defs.portfolio import assets as portfolio_assets
from b3_dagster.defs.sectors import assets as sectors
from b3_dagster.defs.shared.failures import fails_clearly, failure
from b3_dagster.defs.index.assets import ibov_anomaly_chart
from b3_dagster.defs.resources import CatalogResource, LakeResource
from b3_dagster.errors import TableHasNoRows, Unavailable


def test_a_failure_carries_the_explanation_the_retry_decision_and_the_details():
    made = failure(Unavailable("B3 could not be reached", host="b3.example", attempts=5))
    assert made.description.startswith("B3 could not be reached. Nothing was written.")
    assert made.metadata["retry_helps"].value is True and made.allow_retries is True
    assert made.metadata["error"].value == "Unavailable" and made.metadata["attempts"].value == 5
    refused = failure(TableHasNoRows("default.ibov_refined has no rows yet"))
    assert refused.metadata["retry_helps"].value is False and refused.allow_retries is False


def test_plain_functions_and_generators_both_translate():
    @fails_clearly
    def plain():
        raise TableHasNoRows("t has no rows yet")

    @fails_clearly
    def generator():
        yield 1
        raise TableHasNoRows("t has no rows yet")

    with pytest.raises(dg.Failure, match="t has no rows yet"):
        plain()
    produced = generator()
    assert next(produced) == 1
    with pytest.raises(dg.Failure) as raised:
        next(produced)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__, "no library traceback behind it"


def test_a_bug_is_not_dressed_as_a_failure():
    @fails_clearly
    def buggy():
        raise KeyError("column")

    with pytest.raises(KeyError):
        buggy()


@pytest.mark.parametrize("module", [portfolio_assets, index_assets, sectors])
def test_every_asset_of_every_pipeline_goes_through_the_one_helper(module):
    assets = [value for value in vars(module).values() if isinstance(value, dg.AssetsDefinition)]
    assert assets
    for asset in assets:
        compute = asset.op.compute_fn.decorated_fn
        assert getattr(compute, "__wrapped__", None) is not None, f"{asset.key} lacks @fails_clearly"


def test_an_index_asset_on_an_empty_lake_fails_with_one_paragraph_saying_no_retry_helps(tmp_path):
    lake = LakeResource(root=str(tmp_path / "lake"))
    result = dg.materialize([ibov_anomaly_chart], resources={"lake": lake, "catalog": CatalogResource(lake=lake)},
                            raise_on_error=False)
    assert not result.success
    data = result.get_step_failure_events()[0].step_failure_data
    assert "has no rows yet" in data.error.message and "materialise" in data.error.message
    assert data.user_failure_data.metadata["retry_helps"].value is False
    assert data.user_failure_data.metadata["error"].value == "TableHasNoRows"
    assert data.error.cause is None, "the user reads the message, not the library's traceback"
