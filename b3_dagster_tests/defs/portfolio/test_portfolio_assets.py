"""The real assets, materialised in process against recorded B3 answers served over HTTP on 127.0.0.1."""

import datetime as dt

import dagster as dg
import pytest

from b3_dagster.defs.portfolio.assets import ibov_raw_snapshot, sector_refine_and_commit
from b3_dagster.defs.resources import RefineEngineResource
from b3_dagster.defs.resources import B3PortfolioResource, CatalogResource, LakeResource
from b3_dagster.storage.lake import LocalLake
from b3_dagster.storage.layout import raw_key
from b3_dagster.storage.portfolio_store import PortfolioStore

ALL = [ibov_raw_snapshot, sector_refine_and_commit]
PROCESSING = {"ops": {"ibov_sector_refined": {"config": {"processing_date": "2025-06-02"}}}}


def resources(lake_root, base_url, language):
    lake = LakeResource(root=str(lake_root))
    return {"lake": lake, "catalog": CatalogResource(lake=lake), "refine_engine": RefineEngineResource(),
            "b3": B3PortfolioResource(base_url=base_url, language=language, retries=1, backoff_seconds=0,
                                      page_size=40)}


def run(lake_root, base_url, recording, assets=ALL, partition=None, run_config=PROCESSING):
    return dg.materialize(assets, partition_key=partition or recording.date,
                          resources=resources(lake_root, base_url, recording.language),
                          run_config=run_config if sector_refine_and_commit in assets else None, raise_on_error=False)


def checks(result) -> dict[str, bool]:
    return {evaluation.check_name: evaluation.passed for evaluation in result.get_asset_check_evaluations()}


@pytest.mark.parametrize("date", ["2022-12-08", "2025-04-07"])
def test_raw_to_refined_to_table(lake_root, serve_recording, recordings, date, query_tables):
    recording = recordings[date]
    result = run(lake_root, serve_recording(recording), recording)
    assert result.success
    assert checks(result) and all(checks(result).values()), checks(result)
    # 6 raw, 3 refined, 2 sector checks and the table's; subsector_share_jumps has one day: skipped, not passed
    assert len(checks(result)) == 12 and "subsector_share_jumps" not in checks(result)
    assert checks(result)["every_ticker_placed"] and checks(result)["canonical_sectors_sum_to_100"]

    store = PortfolioStore(LocalLake(lake_root))
    day = dt.date.fromisoformat(date)
    raw = store.read_raw(day)
    assert len(raw.rows) == len(recording.document()["results"])
    answer = query_tables(
        lake_root, f"SELECT SUM(total_codigo) AS tickers, SUM(soma_part) AS part FROM default.tb_ibov_refined "
                   f"WHERE Data = DATE '{date}'")
    assert answer["tickers"].iloc[0] == len(raw.rows)
    assert answer["part"].iloc[0] == pytest.approx(raw.rows["part"].sum(), abs=1e-9)

    materializations = {m.asset_key.to_user_string(): m for m in result.get_asset_materialization_events()}
    raw_metadata = materializations["ibov_raw_snapshot"].materialization.metadata
    assert raw_metadata["dagster/row_count"].value == len(raw.rows)
    assert raw_metadata["path"].value.endswith(raw_key(day))
    assert "|" in raw_metadata["preview"].value  # a Markdown table
    table_metadata = materializations["tb_ibov_refined"].materialization.metadata
    assert "Setor" in table_metadata["participation_by_sector"].value
    snapshot_id = table_metadata["snapshot_id"].value
    assert query_tables(lake_root, "SELECT COUNT(*) AS n FROM default.tb_ibov_refined", as_of=snapshot_id)["n"][0] \
        == table_metadata["dagster/row_count"].value
    # the table is the only copy of the refined rows: the run's staging is gone, no refined/ folders exist
    assert not list((lake_root / "staging").rglob("*.parquet")) and not (lake_root / "refined").exists()


def test_rematerialising_the_same_day_is_a_no_op(lake_root, serve_recording, recordings):
    recording = recordings["2025-04-07"]
    base = serve_recording(recording)
    first = run(lake_root, base, recording, [ibov_raw_snapshot])
    second = run(lake_root, base, recording, [ibov_raw_snapshot])
    assert first.success and second.success
    statuses = [r.get_asset_materialization_events()[0].materialization.metadata["write_status"].value
                for r in (first, second)]
    assert statuses == ["written", "unchanged"]


@pytest.mark.parametrize(
    ("partition", "hint"),
    [("2025-04-08", "has not published this session's portfolio yet"),  # asked too early
     ("2025-04-04", "import B3's IBOVDia CSV")],  # asked too late: B3 moved on to the next session
)
def test_a_partition_that_b3_is_not_serving_fails_and_writes_nothing(lake_root, serve_recording, recordings,
                                                                     partition, hint):
    recording = recordings["2025-04-07"]
    result = run(lake_root, serve_recording(recording), recording, [ibov_raw_snapshot], partition=partition)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert f"B3 served the portfolio of 2025-04-07, not of partition {partition}" in failure.message
    assert hint in failure.message
    assert not (lake_root / "raw").exists()


def test_different_data_for_a_stored_day_is_refused(lake_root, serve_recording, recordings, httpserver):
    recording = recordings["2025-04-07"]
    assert run(lake_root, serve_recording(recording), recording, [ibov_raw_snapshot]).success
    original = (lake_root / raw_key(dt.date(2025, 4, 7))).read_bytes()

    def revised(document):  # B3 revises two weights within one sector: every check still holds
        embraer, marcopolo = document["results"][1], document["results"][2]
        assert (embraer["cod"], marcopolo["cod"]) == ("EMBR3", "POMO4")
        embraer["part"], marcopolo["part"] = "2.100", "0.257"
        return document

    httpserver.clear()
    result = run(lake_root, serve_recording(recording, mutate=revised), recording, [ibov_raw_snapshot])
    assert not result.success
    assert "already exists" in result.get_step_failure_events()[0].step_failure_data.error.message
    assert (lake_root / raw_key(dt.date(2025, 4, 7))).read_bytes() == original

    forced = dg.materialize([ibov_raw_snapshot], partition_key=recording.date,
                            resources=resources(lake_root, httpserver.url_for("").rstrip("/"), "en-us"),
                            run_config={"ops": {"ibov_raw_snapshot": {"config": {"allow_overwrite": True}}}})
    assert forced.success
    assert list((lake_root / "archive").rglob("*.parquet")), "the replaced file is archived"


def test_a_malformed_b3_answer_fails_the_run_and_writes_nothing(lake_root, serve_recording, recordings):
    recording = recordings["2022-12-08"]

    def drift(document):
        for row in document["results"]:
            row["weight"] = row.pop("part")
        return document

    result = run(lake_root, serve_recording(recording, mutate=drift), recording)
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "lacks 'part' (schema change?)" in message and "nothing was written" in message
    assert not (lake_root / "raw").exists() and not (lake_root / "refined").exists()


@pytest.mark.parametrize(
    ("corrupt", "failing_checks"),
    [
        # a weight changed: the day no longer sums to 100 and its sector no longer matches B3's subtotal
        (lambda rows: rows[0].update(part="9,999"), {"weights_sum_to_100", "sector_subtotals_match_b3"}),
        # a row repeated: duplicate ticker, and the weights and quantities overshoot
        (lambda rows: rows.append(dict(rows[0])), {"no_duplicate_tickers", "weights_sum_to_100",
                                                   "sector_subtotals_match_b3", "theoretical_quantity_matches_header"}),
        (lambda rows: [row.update(partAcum="7,777") for row in rows if row["segment"] == rows[3]["segment"]],
         {"sector_subtotals_match_b3"}),
        (lambda rows: rows[2].update(theoricalQty="1.000"), {"theoretical_quantity_matches_header"}),
    ],
    ids=["weights", "duplicate", "subtotal", "quantity"],
)
def test_checks_fail_on_a_corrupted_snapshot_and_block_the_refine(lake_root, serve_recording, recordings, corrupt,
                                                                   failing_checks):
    recording = recordings["2022-12-08"]

    def corrupted(document):
        corrupt(document["results"])
        document["page"]["totalRecords"] = len(document["results"])
        return document

    result = run(lake_root, serve_recording(recording, mutate=corrupted), recording)
    outcome = checks(result)
    assert len(outcome) == 6, "every raw check ran"
    assert {name for name, passed in outcome.items() if not passed} == failing_checks
    # the bad day is kept out of raw/ (so nothing refines it) but not lost; the blocking checks stop the run
    assert not (lake_root / "raw").exists()
    quarantined = list((lake_root / "quarantine" / "raw" / f"date={recording.date}").glob("*.parquet"))
    assert len(quarantined) == 1
    assert not (lake_root / "staging").exists() and not (lake_root / "warehouse").exists()
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["write_status"].value == "quarantined"
    assert set(metadata["failed_rules"].value.split(", ")) == failing_checks


def test_a_bad_file_dropped_into_raw_is_not_refined(lake_root, recordings):
    """A file put into raw/ from outside (not through the asset) whose weights B3's own totals contradict."""
    from b3_dagster_tests.helpers import snapshot_of

    snapshot = snapshot_of(recordings["2025-04-07"])
    snapshot.rows.loc[0, "part"] = 9.999
    PortfolioStore(LocalLake(lake_root)).write_raw(snapshot)
    result = dg.materialize([sector_refine_and_commit], partition_key="2025-04-07",
                            resources=resources(lake_root, "http://unused", "en-us"), run_config=PROCESSING,
                            raise_on_error=False)
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "2025-04-07" in message and "weights_sum_to_100" in message and "nothing was refined" in message
    assert not (lake_root / "staging").exists() and not (lake_root / "warehouse").exists()


class SectorDroppingEngine(RefineEngineResource):
    """A refine that loses a sector of 2025-04-07 after staging it (a partial output, as a faulty engine makes)."""

    def refine(self, context, store, days, processing_date, prefix, raw_rows=None, mapping=None):
        super().refine(context, store, days, processing_date, prefix, raw_rows, mapping)
        from b3_dagster.model import REFINED_SCHEMA
        from b3_dagster.storage import staging

        staged = staging.read_rows(store.lake, prefix, REFINED_SCHEMA)
        staging.write_rows(store.lake, prefix, staged.slice(1))


def test_a_partial_refine_is_refused_and_the_day_keeps_its_committed_rows(lake_root, serve_recording, recordings,
                                                                           query_tables):
    recording = recordings["2025-04-07"]
    assert run(lake_root, serve_recording(recording), recording).success
    sql = "SELECT COUNT(*) AS sectors, SUM(total_codigo) AS tickers FROM default.tb_ibov_refined"
    before = query_tables(lake_root, sql)
    result = dg.materialize([sector_refine_and_commit], partition_key=recording.date,
                            resources={**resources(lake_root, "http://unused", "en-us"),
                                       "refine_engine": SectorDroppingEngine()},
                            run_config=PROCESSING, raise_on_error=False)
    assert not result.success
    # the refine's own checks see the hole against raw ...
    assert not checks(result)["ticker_count_matches_raw"]
    # ... and the commit refuses the day, naming it and why; the table keeps the day's committed rows
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "2025-04-07: partial" in message and "nothing was committed" in message
    assert query_tables(lake_root, sql).equals(before) and before["sectors"][0] > 20


def test_an_unreachable_b3_fails_with_a_network_error_not_an_unusable_answer(lake_root, recordings):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as listener:  # closed when the block ends: the port refuses
        port = listener.getsockname()[1]
    result = run(lake_root, f"http://127.0.0.1:{port}", recordings["2025-04-07"], [ibov_raw_snapshot])
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data
    first_line = failure.error.message.strip().splitlines()[0]
    assert "unusable answer" not in failure.error.message
    assert f"127.0.0.1:{port} could not be reached: connection refused (2 attempts: 1 + 1 retries)" in first_line
    assert "B3_BASE_URL" in first_line and "nothing was written" in first_line
    assert "GetPortfolioDay" not in first_line
    assert failure.user_failure_data.metadata["host"].value == f"127.0.0.1:{port}"
    assert not (lake_root / "raw").exists()


@pytest.mark.slow  # 2.7 s (measured 2026-11-30, --durations=0)
def test_on_a_standard_csv_day_the_subtotal_check_is_skipped_with_its_reason(lake_root, serve_recording, recordings):
    """A standard CSV carries no partAcum: the refined check that compares with it has nothing to compare. It is not
    reported as passed: Dagster shows it as skipped, and the materialisation lists it with the reason."""
    import asyncio
    from pathlib import Path

    from dagster._core.loader import LoadingContextForTest
    from dagster._core.storage.asset_check_execution_record import (
        AssetCheckExecutionRecordStatus,
        AssetCheckExecutionResolvedStatus,
    )

    from b3_dagster.storage.history_import import import_files
    from b3_dagster.rules.quality import NO_SUBTOTAL_REASON

    recording = recordings["2025-04-07"]  # the API snapshot whose sectors place the standard file's rows
    assert run(lake_root, serve_recording(recording), recording, [ibov_raw_snapshot]).success
    standard = Path(__file__).resolve().parents[2] / "fixtures" / "b3_csv" / "csv" / "IBOVDia_28-04-25.csv"
    [imported] = import_files([standard], PortfolioStore(LocalLake(lake_root)), sector_source="nearest-snapshot")
    assert imported.status == "written" and imported.sector_snapshot == dt.date(2025, 4, 7)

    with dg.instance_for_test() as instance:
        result = dg.materialize([sector_refine_and_commit], partition_key="2025-04-28",
                                resources=resources(lake_root, "http://unused", "en-us"), run_config=PROCESSING,
                                instance=instance)
        assert result.success
        evaluated = checks(result)
        assert evaluated == {"ticker_count_matches_raw": True, "one_row_per_sector_and_day": True,
                             "canonical_sectors_sum_to_100": True, "every_ticker_placed": True,
                             "table_answers_query": True}, "the subtotal check is not reported as passed"
        metadata = {m.asset_key.to_user_string(): m.materialization.metadata
                    for m in result.get_asset_materialization_events()}
        assert metadata["ibov_sector_refined"]["skipped_checks"].value.startswith(
            f"- **sector_part_matches_b3_subtotal**: {NO_SUBTOTAL_REASON}\n- **subsector_share_jumps**: "
            "fewer than two sessions")
        assert metadata["tb_ibov_refined"].get("skipped_checks") is None

        key = dg.AssetCheckKey(dg.AssetKey("ibov_sector_refined"), "sector_part_matches_b3_subtotal")
        record = instance.event_log_storage.get_latest_asset_check_execution_by_key([key])[key]
        assert record.run_id == result.run_id and record.status == AssetCheckExecutionRecordStatus.PLANNED
        status = asyncio.run(record.resolve_status(LoadingContextForTest(instance)))
        assert status == AssetCheckExecutionResolvedStatus.SKIPPED  # what the UI shows



def test_a_table_run_without_a_refine_is_refused(lake_root, serve_recording, recordings, query_tables):
    """The table commits the staging of its own run: alone it finds nothing, and deletes nothing."""
    recording = recordings["2025-04-07"]
    assert run(lake_root, serve_recording(recording), recording).success
    before = query_tables(lake_root, "SELECT * FROM default.tb_ibov_refined ORDER BY Setor")
    result = dg.materialize([sector_refine_and_commit], selection=["tb_ibov_refined"], partition_key=recording.date,
                            resources=resources(lake_root, "http://unused", "en-us"), raise_on_error=False)
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "2025-04-07: the refine of this run did not finish" in message
    assert query_tables(lake_root, "SELECT * FROM default.tb_ibov_refined ORDER BY Setor").equals(before)


@pytest.mark.slow  # 2.4 s (measured 2026-11-30, --durations=0)
def test_the_maintenance_job_removes_what_killed_runs_left_and_keeps_the_table(lake_root, serve_recording, recordings,
                                                                               query_tables):
    from b3_dagster.defs.maintenance.jobs import table_maintenance_job

    recording = recordings["2025-04-07"]
    assert run(lake_root, serve_recording(recording), recording).success
    assert run(lake_root, "http://unused", recording, [sector_refine_and_commit]).success
    before = query_tables(lake_root, "SELECT * FROM default.tb_ibov_refined ORDER BY Setor")
    table_data = next((lake_root / "warehouse" / "default" / "tb_ibov_refined" / "data").iterdir())
    orphan = table_data / "00000-0-left-by-a-killed-commit.parquet"
    orphan.write_bytes(b"PAR1 cut short")
    stale = lake_root / "staging" / "ibov_sector_refined" / "a-killed-run" / "part-0.parquet"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"PAR1 cut short")
    lake = LakeResource(root=str(lake_root))
    result = dg.Definitions(jobs=[table_maintenance_job], resources={"catalog": CatalogResource(lake=lake)}) \
        .resolve_job_def("table_maintenance_job").execute_in_process(run_config={"ops": {"maintain_tables": {
            "config": {"snapshot_retention_days": 0.000001, "orphan_grace_hours": 0}}}})
    assert result.success
    assert not orphan.exists() and not stale.exists()
    assert query_tables(lake_root, "SELECT * FROM default.tb_ibov_refined ORDER BY Setor").equals(before)
    from b3_dagster.storage.tables import PORTFOLIO_TABLE_DEF, open_tables

    assert len(open_tables(LocalLake(lake_root)).snapshots(PORTFOLIO_TABLE_DEF)) == 1, "older snapshot expired"
