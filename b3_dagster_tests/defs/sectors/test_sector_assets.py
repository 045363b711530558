"""The sector dimension in the pipeline: every shipped real download refined in ONE range run on B3's classification
(days without raw skipped by name), the canonical answers of seed 000's query, the sector checks, the classification
table and the sector weights chart."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest

import b3_dagster
from b3_dagster.cli import SEED_000_QUERIES
from b3_dagster.defs.resources import RefineEngineResource
from b3_dagster.defs.shared.metadata import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG
from b3_dagster.defs.resources import CatalogResource, LakeResource
from b3_dagster.definitions import build_definitions
from b3_dagster.storage.history_import import import_files
from b3_dagster.sources.b3_portfolio import parse_page, rows_to_frame
from b3_dagster.model import PortfolioSnapshot
from b3_dagster.storage.lake import LocalLake
from b3_dagster.storage.portfolio_store import PortfolioStore

CSV_RECORDINGS = Path(b3_dagster.__file__).resolve().parent / "recordings" / "b3_csv"


def definitions(root: Path) -> dg.Definitions:
    lake = LakeResource(root=str(root))
    return build_definitions({"lake": lake, "catalog": CatalogResource(lake=lake),
                              "refine_engine": RefineEngineResource()})


def run(defs: dg.Definitions, job: str, start: str | None = None, end: str | None = None, partition=None):
    tags = {PARTITION_RANGE_START_TAG: start, PARTITION_RANGE_END_TAG: end or start} if start else {}
    return defs.resolve_job_def(job).execute_in_process(tags=tags, partition_key=partition, raise_on_error=False)


def checks(result) -> dict[str, bool]:
    return {evaluation.check_name: evaluation.passed for evaluation in result.get_asset_check_evaluations()}


def metadata(result, asset: str) -> dict:
    return next(event.materialization.metadata for event in result.get_asset_materialization_events()
                if event.asset_key.to_user_string() == asset)


@pytest.fixture(scope="module")
def refined_lake(tmp_path_factory):
    """Every shipped real download (3 by-sector, 20 standard) and the 2 recorded API days in a lake, refined in one
    range run from the first to the last raw day."""
    from b3_dagster.replay.b3_api import recorded_days

    root = tmp_path_factory.mktemp("sectors") / "lake"
    store = PortfolioStore(LocalLake(root))
    for recording in recorded_days():
        page = parse_page(recording.path.read_bytes(), page=1, language=recording.language)
        store.write_raw(PortfolioSnapshot(page.portfolio_date, rows_to_frame(page.rows), page.reductor,
                                          page.theoretical_qty_total, source=recording.path.name))
    files = sorted(CSV_RECORDINGS.glob("*.csv")) + sorted((CSV_RECORDINGS / "standard").glob("*.csv"))
    outcomes = import_files(files, store)
    assert len(files) == 23 and all(outcome.ok for outcome in outcomes), [o for o in outcomes if not o.ok]
    days = store.raw_days()
    defs = definitions(root)
    # Dagster's own switch, as the demo sets it (b3_dagster/cli.py): one planned event per asset, not one per session
    # of the range (1,642 events); what the run computes and records as materialised is the same
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "true")
        result = run(defs, "ibov_refine_job", days[0].isoformat(), days[-1].isoformat())
    return root, days, defs, result


@pytest.mark.slow  # its refined_lake fixture: a 25-day range refine, 7 s (measured 2026-11-30, --durations=0)
def test_one_range_run_refines_the_days_with_raw_and_names_the_skipped_sessions(refined_lake, query_tables):
    root, days, _, result = refined_lake
    assert result.success
    assert len(days) == 25 and days[0] == dt.date(2022, 12, 8) and days[-1] == dt.date(2026, 3, 24)
    refined, table = metadata(result, "ibov_sector_refined"), metadata(result, "tb_ibov_refined")
    assert refined["days"].value == table["days"].value == 25
    skipped = refined["skipped_days"].value
    assert skipped == table["skipped_days"].value and skipped.startswith("7")  # ~830 sessions in 2022-12..2026-03
    assert "2022-12-09" in skipped and "2025-04-07" not in skipped
    # only the days refined are marked materialised, each with its own rows; the sessions without raw are not
    for asset in ("ibov_sector_refined", "tb_ibov_refined"):
        events = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == asset]
        assert sorted(e.partition for e in events) == [day.isoformat() for day in days], asset
        assert all(e.materialization.metadata["dagster/row_count"].value > 20 for e in events), asset
    answered = query_tables(root, "SELECT COUNT(DISTINCT Data) AS days FROM default.tb_ibov_refined")
    assert answered["days"][0] == 25


@pytest.mark.slow  # its refined_lake fixture: a 25-day range refine, 7 s (measured 2026-11-30, --durations=0)
def test_participation_by_sector_has_one_row_per_canonical_subsector(refined_lake, query_tables):
    root, _, _, _ = refined_lake
    answer = query_tables(root, SEED_000_QUERIES["Participação por setor"])
    pairs = query_tables(root, "SELECT DISTINCT setor_economico, subsetor, Setor FROM default.tb_ibov_refined")
    assert len(answer) == len(pairs) == pairs["Setor"].nunique() == 31  # over the 25 recorded days
    assert not answer["Setor"].str.contains("\ufffd").any()
    assert "Petróleo, Gás e Biocombustíveis" in set(answer["Setor"])
    assert "Petróleo/ Gás e Biocombustíveis" not in set(answer["Setor"])  # the by-sector CSV's own spelling


@pytest.mark.slow  # its refined_lake fixture: a 25-day range refine, 7 s (measured 2026-11-30, --durations=0)
def test_canonical_sectors_sum_to_100_each_day_and_the_sector_checks_pass(refined_lake, query_tables):
    root, _, _, result = refined_lake
    totals = query_tables(root, "SELECT Data, SUM(soma_part) AS total FROM default.tb_ibov_refined GROUP BY Data")
    assert len(totals) == 25 and ((totals["total"] - 100).abs() < 0.01).all()
    evaluated = checks(result)
    assert evaluated["canonical_sectors_sum_to_100"] and evaluated["every_ticker_placed"]
    assert evaluated["subsector_share_jumps"]  # 2025-07-10 -> 2025-07-11 are consecutive sessions: compared
    assert all(evaluated.values()), evaluated


@pytest.mark.slow  # its refined_lake fixture: a 25-day range refine, 7 s (measured 2026-11-30, --durations=0)
def test_a_range_without_any_raw_fails_clearly(refined_lake):
    _, _, defs, _ = refined_lake
    result = run(defs, "ibov_refine_job", "2022-01-03", "2022-01-05")
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data
    assert failure.error.cls_name == "Failure"
    assert "none of the run's 3 day(s) (2022-01-03..2022-01-05) has a raw portfolio" in failure.error.message
    assert "import-csv" in failure.error.message


@pytest.mark.slow  # its refined_lake fixture: a 25-day range refine, 7 s (measured 2026-11-30, --durations=0)
def test_the_classification_table_commits_and_answers_sql_and_the_chart_covers_every_day(refined_lake,
                                                                                         query_tables):
    root, days, defs, _ = refined_lake
    result = run(defs, "b3_sectors_job")
    assert result.success
    classification = metadata(result, "classificacao_setorial")
    assert classification["vintages"].value == 12 and classification["errors"].value == "none"
    vintages = query_tables(root, "SELECT COUNT(DISTINCT vigente_desde) AS n, COUNT(*) AS rows_ "
                                  "FROM b3_refined_db.classificacao_setorial")
    assert vintages["n"][0] == 12 and vintages["rows_"][0] == classification["dagster/row_count"].value
    petrobras = query_tables(root, "SELECT DISTINCT setor_economico FROM b3_refined_db.classificacao_setorial "
                                   "WHERE codigo = 'PETR' AND NOT fallback_only")
    assert list(petrobras["setor_economico"]) == ["Petróleo, Gás e Biocombustíveis"]
    chart = metadata(result, "ibov_sector_weights_chart")
    assert chart["days"].value == len(days) and chart["first_day"].value == "2022-12-08"
    png = root / "charts" / "ibov_sector_weights.png"
    assert png.read_bytes().startswith(b"\x89PNG") and chart["chart"].value.startswith("![")


def test_a_ticker_no_vintage_places_fails_the_check_naming_it_and_the_day_is_not_committed(tmp_path, recordings,
                                                                                           query_tables):
    """Hand-made fault case: a recorded day with one ticker renamed to a root no classification lists."""
    root = tmp_path / "lake"
    recording = recordings["2025-04-07"]
    page = parse_page(recording.path.read_bytes(), page=1, language=recording.language)
    rows = rows_to_frame(page.rows)
    rows.loc[0, "cod"] = "ZZZZ3"
    PortfolioStore(LocalLake(root)).write_raw(PortfolioSnapshot(page.portfolio_date, rows, page.reductor,
                                                                page.theoretical_qty_total, source="hand-made"))
    result = run(definitions(root), "ibov_refine_job", partition="2025-04-07")
    assert not result.success
    failed = {e.check_name: e for e in result.get_asset_check_evaluations() if not e.passed}
    assert "every_ticker_placed" in failed
    description = failed["every_ticker_placed"].description
    assert "2025-04-07" in description and "ZZZZ3" in description
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "2025-04-07" in message and "nothing was committed" in message
    assert query_tables(root, "SELECT COUNT(*) AS n FROM default.tb_ibov_refined")["n"][0] == 0
