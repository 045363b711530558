"""The index assets, run in process against recorded Yahoo answers served over HTTP on 127.0.0.1: single-run
backfills, month edges, checks read from storage, the ibov_refined table and the charts."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import statistics

import dagster as dg
import pyarrow as pa
import pandas as pd
import pytest

from b3_dagster.calendar import sessions
from b3_dagster.defs.resources import YahooChartResource
from b3_dagster.defs.index.assets import ibov_index_chart, ibov_sector_chart, index_assets
from b3_dagster.defs.index.jobs import index_charts_job, index_job, index_refine_job
from b3_dagster.defs.portfolio.assets import portfolio_assets
from b3_dagster.defs.shared.metadata import PARTITION_RANGE_END_TAG as RANGE_END
from b3_dagster.defs.shared.metadata import PARTITION_RANGE_START_TAG as RANGE_START
from b3_dagster.defs.resources import RefineEngineResource
from b3_dagster.defs.resources import B3PortfolioResource, CatalogResource, LakeResource
from b3_dagster.replay.b3_api import recorded_days
from b3_dagster.sources.b3_portfolio import parse_page, rows_to_frame
from b3_dagster.storage.bar_store import BarStore
from b3_dagster.storage.lake import LocalLake
from b3_dagster.storage.tables import PORTFOLIO_TABLE_DEF, open_tables
from b3_dagster.transforms.sector_refine import refine_portfolio
from b3_dagster_tests.helpers import REAL_BVSP, fixture_bytes, fixture_json, position_of, quote, serve_chart


def definitions(lake_root, base_url) -> dg.Definitions:
    lake = LakeResource(root=str(lake_root))
    return dg.Definitions(
        assets=index_assets,
        jobs=[index_job, index_refine_job, index_charts_job],
        resources={"lake": lake, "catalog": CatalogResource(lake=lake),
                   "yahoo": YahooChartResource(base_url=base_url, retries=0, backoff_seconds=0)},
    )


def run(defs: dg.Definitions, job: str, start: str, end: str | None = None):
    tags = {RANGE_START: start, RANGE_END: end or start}
    return defs.resolve_job_def(job).execute_in_process(tags=tags, raise_on_error=False)


def checks(result) -> dict[str, bool]:
    return {evaluation.check_name: evaluation.passed for evaluation in result.get_asset_check_evaluations()}


def failure_message(result) -> str:
    return "\n".join(event.event_specific_data.error.to_string() for event in result.all_events
                     if event.event_type_value == "STEP_FAILURE")


def test_a_backfill_range_is_one_request_and_one_file_per_session(lake_root, httpserver):
    defs = definitions(lake_root, serve_chart(httpserver, fixture_bytes(REAL_BVSP)))
    result = run(defs, "ibov_index_job", "2026-09-02", "2026-10-02")

    assert result.success
    assert len(httpserver.log) == 1
    days = sessions("2026-09-02", "2026-10-02")
    store = BarStore(LocalLake(lake_root))
    assert store.raw_days() == days
    assert store.read_raw(days)["close"].tolist() == quote(fixture_json(REAL_BVSP))["close"]
    events = result.get_asset_materialization_events()
    assert sorted(event.partition for event in events) == [day.isoformat() for day in days]
    for event in events:  # each session's record is its own: one row, its own file, its own bar
        metadata = event.materialization.metadata
        assert metadata["dagster/row_count"].value == 1
        assert f"date={event.partition}/" in metadata["location"].value
        assert event.partition in metadata["preview"].value and metadata["status"].value == "written"


def test_a_revised_bar_is_replaced_only_when_asked_and_its_session_names_the_archived_copy(lake_root, httpserver):
    revised = copy.deepcopy(fixture_json(REAL_BVSP))
    quote(revised)["volume"][position_of(revised, dt.date(2026, 9, 30))] += 1000  # Yahoo back-fills volumes
    httpserver.expect_ordered_request("/v8/finance/chart/^BVSP").respond_with_json(fixture_json(REAL_BVSP))
    httpserver.expect_ordered_request("/v8/finance/chart/^BVSP").respond_with_json(revised)
    httpserver.expect_ordered_request("/v8/finance/chart/^BVSP").respond_with_json(revised)
    defs = definitions(lake_root, httpserver.url_for("").rstrip("/"))
    assert run(defs, "ibov_index_job", "2026-09-02", "2026-10-02").success

    refused = run(defs, "ibov_index_job", "2026-09-02", "2026-10-02")
    assert not refused.success and "allow_overwrite" in failure_message(refused)
    replaced = defs.resolve_job_def("ibov_index_job").execute_in_process(
        tags={RANGE_START: "2026-09-02", RANGE_END: "2026-10-02"},
        run_config={"ops": {"ibov_index_raw": {"config": {"allow_overwrite": True}}}})
    assert replaced.success
    by_day = {event.partition: event.materialization.metadata for event in replaced.get_asset_materialization_events()}
    assert by_day["2026-09-30"]["status"].value == "replaced"
    assert by_day["2026-09-30"]["archived_previous"].value.startswith("archive/")
    assert {day: metadata["status"].value for day, metadata in by_day.items() if day != "2026-09-30"} == \
        {day.isoformat(): "unchanged" for day in sessions("2026-09-02", "2026-10-02") if day.isoformat() != "2026-09-30"}
    assert all(metadata["archived_previous"].value == "" for day, metadata in by_day.items() if day != "2026-09-30")


def test_a_bad_answer_fails_the_run_and_writes_nothing(lake_root, httpserver):
    document = copy.deepcopy(fixture_json(REAL_BVSP))
    position = position_of(document, dt.date(2026, 9, 30))
    quote(document)["high"][position] = quote(document)["low"][position] - 1
    defs = definitions(lake_root, serve_chart(httpserver, document))
    result = run(defs, "ibov_index_job", "2026-09-02", "2026-10-02")

    assert not result.success
    assert "bar 2026-09-30, field 'high'" in failure_message(result)
    assert LocalLake(lake_root).list("") == []


def test_a_provisional_newest_bar_fails_the_range_and_writes_nothing(lake_root, yahoo_replay):
    """The recorded 2026-03-13 bar is Yahoo's unfinalised one (fractional points, volume 0)."""
    result = run(definitions(lake_root, yahoo_replay), "ibov_index_job", "2026-03-02", "2026-03-13")
    assert not result.success
    assert "bar 2026-03-13" in failure_message(result) and "provisional" in failure_message(result)
    assert LocalLake(lake_root).list("") == []
    assert run(definitions(lake_root, yahoo_replay), "ibov_index_job", "2026-03-02", "2026-03-12").success


def test_refined_month_uses_the_previous_months_sessions_and_passes_its_checks(lake_root, yahoo_replay,
                                                                               query_tables):
    defs = definitions(lake_root, yahoo_replay)
    assert run(defs, "ibov_index_job", "2026-01-02", "2026-03-12").success
    result = run(defs, "ibov_index_refine_job", "2026-02-01")
    assert result.success, failure_message(result)
    assert checks(result) == {"no_session_gaps": True, "prices_positive": True, "ohlc_consistent": True,
                              "zscore_recomputable": True, "seed_001_query_answers": True}

    store = BarStore(LocalLake(lake_root))
    february = query_tables(lake_root, "SELECT * FROM b3_refined_db.ibov_refined WHERE year = 2026 AND month = 2 "
                                       "ORDER BY data")
    february["data"] = [day.date() for day in pd.to_datetime(february["data"])]
    assert february["data"].tolist() == sessions("2026-02-01", "2026-02-28")
    january_tail = [day for day in store.raw_days() if day < dt.date(2026, 2, 1)][-19:]
    closes = store.read_raw(january_tail + [february["data"].iloc[0]])["close"]
    assert february["media_movel_20d"].iloc[0] == pytest.approx(statistics.fmean(closes))

    metadata = {m.asset_key.to_user_string(): m.materialization.metadata
                for m in result.get_asset_materialization_events()}
    assert int(metadata["ibov_refined"]["snapshot_id"].value) > 0
    assert not list((lake_root / "staging").rglob("*.parquet")), "the staged month is gone once committed"
    # each row says its close is Yahoo's bar; index_closes was never run, so B3's close is null and the metadata says why
    assert set(february["fonte_fechamento"]) == {"yahoo"}
    assert february["fechamento_oficial_b3"].isna().all()
    assert "never been materialised" in metadata["ibov_index_refined"]["close_source"].value


def test_refining_without_the_lookback_sessions_fails_and_names_them(lake_root, yahoo_replay):
    defs = definitions(lake_root, yahoo_replay)
    assert run(defs, "ibov_index_job", "2026-01-02", "2026-01-15").success
    assert run(defs, "ibov_index_job", "2026-02-02", "2026-02-27").success
    result = run(defs, "ibov_index_refine_job", "2026-02-01")
    assert not result.success
    assert "2026-01-30" in failure_message(result) and "ibov_index_raw" in failure_message(result)
    assert not (lake_root / "warehouse").exists(), "nothing was committed"


@pytest.mark.slow  # 2.3 s (measured 2026-11-30, --durations=0)
def test_a_range_of_months_is_one_run_with_checks_on_stored_rows(lake_root, yahoo_replay, query_tables):
    defs = definitions(lake_root, yahoo_replay)
    assert run(defs, "ibov_index_job", "2025-10-01", "2026-01-30").success
    result = run(defs, "ibov_index_refine_job", "2025-10-01", "2026-01-01")
    assert result.success, failure_message(result)
    assert all(checks(result).values()) and len(checks(result)) == 5
    refined = {(m.asset_key.to_user_string(), m.partition) for m in result.get_asset_materialization_events()}
    months = ["2025-10-01", "2025-11-01", "2025-12-01", "2026-01-01"]
    assert refined == {(asset, month) for asset in ("ibov_index_refined", "ibov_refined") for month in months}
    counts = query_tables(lake_root, "SELECT year, month, count(*) AS n FROM b3_refined_db.ibov_refined GROUP BY year, month ORDER BY year, month")
    month_ends = {(2025, 10): "2025-10-31", (2025, 11): "2025-11-30", (2025, 12): "2025-12-31",
                  (2026, 1): "2026-01-30"}  # the last raw day of the run
    assert counts["n"].tolist() == [len(sessions(f"{y}-{m:02d}-01", last)) for (y, m), last in month_ends.items()]
    # each month's materialisation counts that month's rows, in the refine and in the table
    for asset in ("ibov_index_refined", "ibov_refined"):
        rows = {m.partition: m.materialization.metadata["dagster/row_count"].value
                for m in result.get_asset_materialization_events() if m.asset_key.to_user_string() == asset}
        assert [rows[month] for month in months] == counts["n"].tolist(), asset


@pytest.mark.slow  # 2.9 s (measured 2026-11-30, --durations=0)
def test_index_chart_is_shown_and_saved_beside_the_lake(lake_root, yahoo_replay):
    defs = definitions(lake_root, yahoo_replay)
    assert run(defs, "ibov_index_job", "2025-11-03", "2026-03-12").success
    assert run(defs, "ibov_index_refine_job", "2025-11-01", "2026-03-01").success
    result = dg.materialize([ibov_index_chart], resources=defs.resources,
                            run_config={"ops": {"ibov_index_chart": {"config": {"sessions": 60}}}})
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    png = (lake_root / "charts" / "ibov_close_moving_averages.png").read_bytes()
    markdown = metadata["chart"].value
    assert markdown.startswith("![") and base64.b64decode(markdown.split("base64,", 1)[1][:-1]) == png
    assert metadata["sessions"].value == 60
    assert metadata["file"].value.endswith("charts/ibov_close_moving_averages.png")


def test_sector_chart_reads_tb_ibov_refined(lake_root, yahoo_replay):
    recording = next(r for r in recorded_days() if r.date == "2025-04-07")
    page = parse_page(json.dumps(recording.document()), page=1, language=recording.language)
    refined = refine_portfolio(rows_to_frame(page.rows), dt.date(2025, 4, 7))
    open_tables(LocalLake(lake_root)).commit(PORTFOLIO_TABLE_DEF, pa.Table.from_pandas(refined), ["2025-04-07"])

    result = dg.materialize([ibov_sector_chart], resources=definitions(lake_root, yahoo_replay).resources)
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["day"].value == "2025-04-07"
    assert metadata["sectors"].value == refined["Setor"].nunique()
    assert (lake_root / "charts" / "ibov_sector_participation.png").read_bytes().startswith(b"\x89PNG")


def test_the_index_assets_join_the_portfolio_graph(lake_root):
    resources = {**definitions(lake_root, "http://127.0.0.1:9").resources, "b3": B3PortfolioResource(),
                 "refine_engine": RefineEngineResource()}
    defs = dg.Definitions(assets=[*portfolio_assets, *index_assets], resources=resources)
    graph = defs.resolve_asset_graph()
    assert dg.AssetKey("tb_ibov_refined") in graph.get(dg.AssetKey("ibov_sector_chart")).parent_keys
    assert graph.get(dg.AssetKey("ibov_index_refined")).parent_keys == {dg.AssetKey("ibov_index_raw")}
