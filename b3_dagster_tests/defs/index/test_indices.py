"""The b3_indices group (issue 14) materialised in process on the real recordings: B3's year grids and
GetStockIndex answers replayed over HTTP on 127.0.0.1 (b3_dagster/replay/b3_indices.py), Yahoo's chart answers
replayed likewise, B3's Carteira do Dia and Evolução Diária downloads imported through the CLI."""

import datetime as dt

import dagster as dg
import pytest

from b3_dagster import cli
from b3_dagster.definitions import build_definitions
from b3_dagster.defs.resources import YahooChartResource
from b3_dagster.defs.index.assets import ibov_index_chart
from b3_dagster.defs.resources import B3IndicesResource
from b3_dagster.defs.shared.partitions import configured_indices
from b3_dagster.defs.shared.metadata import PARTITION_RANGE_END_TAG, PARTITION_RANGE_START_TAG
from b3_dagster.defs.resources import B3PortfolioResource, CatalogResource, LakeResource
from b3_dagster.replay.b3_indices import IndicesReplay
from b3_dagster.replay.b3_api import B3Replay, recorded_days
from b3_dagster.sources.b3_index_csv import recorded_csvs
from b3_dagster.sources.b3_index_history import recordings_dir
from b3_dagster.sources.b3_stock_index import recorded_answers

DAILY_CSVS = recordings_dir() / "csv_evolucao_diaria"
MONTHLY_CSVS = recordings_dir() / "csv_evolucao_mensal"


def definitions(lake_root, indices_url="http://127.0.0.1:9", language="pt-br", yahoo_url="http://127.0.0.1:9",
                b3_url="http://127.0.0.1:9", b3_language="pt-br") -> dg.Definitions:
    lake = LakeResource(root=str(lake_root))
    return build_definitions({
        "lake": lake, "catalog": CatalogResource(lake=lake),
        "b3_indices": B3IndicesResource(base_url=indices_url, language=language, retries=0),
        "yahoo": YahooChartResource(base_url=yahoo_url, retries=0, backoff_seconds=0),
        "b3": B3PortfolioResource(base_url=b3_url, language=b3_language, retries=0),
    })


def run(defs, job, **kwargs):
    start, end = kwargs.pop("start", None), kwargs.pop("end", None)
    tags = {PARTITION_RANGE_START_TAG: start, PARTITION_RANGE_END_TAG: end} if start else {}
    return defs.resolve_job_def(job).execute_in_process(tags=tags, raise_on_error=False, **kwargs)


def evaluations(result) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def metadata(result, asset: str) -> dict:
    return next(m.materialization.metadata for m in result.get_asset_materialization_events()
                if m.asset_key.to_user_string() == asset)


@pytest.mark.slow  # 5.7 s (measured 2026-11-30, --durations=0)
def test_official_closes_from_the_replayed_grids_are_checked_and_reconciled_with_yahoo(lake_root, yahoo_replay,
                                                                                        query_tables):
    with IndicesReplay() as replay:
        for year, language in ((2022, "en-us"), (1997, "pt-br")):  # the whole-year grids recorded
            result = run(definitions(lake_root, replay.base_url, language), "index_history_job",
                         partition_key=f"{year}|IBOV")
            assert result.success
    assert (lake_root / "raw/index_history/indice=IBOV/ano=2022/grid_en-us.json").read_bytes().startswith(b"{")
    defs = definitions(lake_root, yahoo_url=yahoo_replay)
    assert run(defs, "ibov_index_job", start="2022-11-01", end="2022-12-29").success
    assert run(defs, "ibov_index_refine_job", start="2022-12-01", end="2022-12-01").success

    result = run(defs, "index_closes_job")
    assert result.success
    checks = evaluations(result)
    assert checks["published_min_max_equal_grid"].passed and checks["closes_on_sessions"].passed
    yahoo = checks["yahoo_reconciles_with_b3"]
    # measured (docs): Yahoo is off B3's close by more than 0.55 points on 16 days between 2022-11-18 and 12-29
    assert not yahoo.passed and yahoo.severity == dg.AssetCheckSeverity.WARN
    assert "2022-12-06" in str(yahoo.metadata["outside_days"].value)
    counts = query_tables(lake_root, "SELECT year(data) AS ano, count(*) AS n FROM b3_refined_db.index_closes "
                                     "GROUP BY 1 ORDER BY 1")
    assert dict(zip(counts["ano"], counts["n"])) == {1997: 249, 2022: 250}

    # the index chart draws the close of record and says its source: B3's official close on every drawn session
    chart = dg.materialize([ibov_index_chart], resources=defs.resources,
                           run_config={"ops": {"ibov_index_chart": {"config": {"sessions": 20}}}})
    assert metadata(chart, "ibov_index_chart")["close_source"].value == "B3 oficial em 20 sessões, Yahoo em 0"

    # refined again now that index_closes exists, ibov_refined carries B3's close beside Yahoo's on every row
    refined = run(defs, "ibov_index_refine_job", start="2022-12-01", end="2022-12-01")
    assert refined.success
    rows = query_tables(lake_root, "SELECT r.data, r.fonte_fechamento, r.fechamento_oficial_b3, c.fechamento "
                                   "FROM b3_refined_db.ibov_refined r JOIN b3_refined_db.index_closes c "
                                   "ON c.data = r.data AND c.indice = 'IBOV' WHERE r.year = 2022 AND r.month = 12")
    assert len(rows) == 21 and set(rows["fonte_fechamento"]) == {"yahoo"}
    assert rows["fechamento_oficial_b3"].tolist() == rows["fechamento"].tolist()
    assert "on 21 of 21 sessions" in metadata(refined, "ibov_index_refined")["close_source"].value


def test_reconciliation_is_skipped_with_its_reason_when_yahoo_has_no_rows(lake_root):
    assert cli.main(["--lake", str(lake_root), "import-index-history",
                     str(DAILY_CSVS / "Evolucao_Diaria_IBOVESPA_1998_lumpleme_TEXTCOPY.csv")]) == 0
    result = run(definitions(lake_root), "index_closes_job")
    assert result.success
    checks = evaluations(result)
    assert checks["published_min_max_equal_grid"].passed
    assert "yahoo_reconciles_with_b3" not in checks and "closes_on_sessions" not in checks  # skipped, not passed
    skipped = metadata(result, "index_closes")["skipped_checks"].value
    assert "ibov_refined (Yahoo) has no rows yet" in skipped and "1998: before" in skipped
    assert "monthly_matches_daily" not in checks and "no Evolução Mensal download imported" in skipped


def test_the_monthly_download_is_imported_and_checked_against_the_daily_closes(lake_root, capsys, query_tables):
    monthly = MONTHLY_CSVS / "Evolucao_Mensal_IBOVESPA_2014-2025_JulioZequin.csv"
    daily = DAILY_CSVS / "Evolucao_Diaria_IBOVESPA_2021_to-2021-08-25_danielpiasecki.csv"
    assert cli.main(["--lake", str(lake_root), "import-index-history", str(monthly), str(daily)]) == 0
    out = capsys.readouterr().out
    assert "written   Evolucao_Mensal_IBOVESPA_2014-2025_JulioZequin.csv: IBOV monthly closes, 140 months " \
           "2014-01..2025-08" in out
    assert (lake_root / "raw/index_history/indice=IBOV/mensal/2014-01-01_2025-12-31.csv").read_bytes() == \
        monthly.read_bytes()
    result = run(definitions(lake_root), "index_closes_job")
    assert result.success
    check = evaluations(result)["monthly_matches_daily"]
    # Jan-Jul 2021 compared; August is partial in the daily download (made 2021-08-25): named, not compared
    assert check.passed and check.metadata["months_compared"].value == 7
    assert "IBOV 2021-08 (daily closes end 2021-08-25)" in str(check.metadata["months_partial_in_daily"].value)
    # the monthly closes are raw, not a table: index_closes holds only the daily closes
    assert query_tables(lake_root, "SELECT count(*) AS n FROM b3_refined_db.index_closes")["n"].tolist() == [161]


def test_a_monthly_value_off_the_daily_close_fails_the_check(lake_root, tmp_path):
    """A hand-made fault: the real monthly download with March 2021's value changed by one point."""
    data = (MONTHLY_CSVS / "Evolucao_Mensal_IBOVESPA_2014-2025_JulioZequin.csv").read_bytes()
    march = next(line for line in data.split(b"\n") if line.startswith(b"3;2021;"))
    altered = tmp_path / "Evolucao_Mensal_altered.csv"
    altered.write_bytes(data.replace(march, march[:-4] + (b"9" if march[-4:-3] != b"9" else b"8") + march[-3:]))
    daily = DAILY_CSVS / "Evolucao_Diaria_IBOVESPA_2021_to-2021-08-25_danielpiasecki.csv"
    assert cli.main(["--lake", str(lake_root), "import-index-history", str(altered), str(daily)]) == 0
    check = evaluations(run(definitions(lake_root), "index_closes_job"))["monthly_matches_daily"]
    assert not check.passed and "IBOV 2021-03: monthly" in check.description


def test_import_index_history_keeps_the_longer_download_and_names_a_bad_file(lake_root, tmp_path, capsys):
    shorter, longer = (DAILY_CSVS / "Evolucao_Diaria_IBOVESPA_2021_to-2021-04-07_LuisXIII.csv",
                       DAILY_CSVS / "Evolucao_Diaria_IBOVESPA_2021_to-2021-08-25_danielpiasecki.csv")
    assert cli.main(["--lake", str(lake_root), "import-index-history", str(longer), str(shorter)]) == 0
    out = capsys.readouterr().out
    assert "written   Evolucao_Diaria_IBOVESPA_2021_to-2021-08-25" in out and "kept (the stored download has 161" in out
    assert (lake_root / "raw/index_history/indice=IBOV/ano=2021/evolucao_diaria.csv").read_bytes() == \
        longer.read_bytes()
    bad = tmp_path / "Evolucao_Diaria_broken.csv"
    bad.write_bytes(longer.read_bytes()[:300])
    assert cli.main(["--lake", str(lake_root), "import-index-history", str(bad)]) == 1
    assert "Evolucao_Diaria_broken.csv" in capsys.readouterr().err


@pytest.mark.slow  # 2.4 s (measured 2026-11-30, --durations=0)
def test_membership_equals_the_ibov_portfolio_of_the_same_day(lake_root, query_tables):
    recording = next(r for r in recorded_days() if r.date == "2025-04-07")
    with B3Replay(recording) as b3:
        assert run(definitions(lake_root, b3_url=b3.base_url, b3_language=recording.language),
                   "ibov_snapshot_job", partition_key="2025-04-07").success
    with IndicesReplay(recorded_answers()["2025-04-07"]) as replay:
        assert run(definitions(lake_root, replay.base_url), "index_membership_job", partition_key="2025-04-07").success
    with IndicesReplay(recorded_answers()["2022-05-13"]) as replay:  # a day without any stored portfolio
        assert run(definitions(lake_root, replay.base_url), "index_membership_job", partition_key="2022-05-13").success
    result = run(definitions(lake_root), "index_membership_table_job")
    assert result.success
    check = evaluations(result)["membership_matches_portfolios"]
    assert check.passed and "IBOV 2025-04-07" in check.description
    rows = query_tables(lake_root, "SELECT data_atualizacao, count(DISTINCT indice) AS n FROM "
                                   "b3_refined_db.index_membership GROUP BY 1 ORDER BY 1")
    assert rows["n"].tolist() == [25, 34]


def test_membership_check_is_skipped_without_a_portfolio_of_the_day(lake_root):
    with IndicesReplay(recorded_answers()["2022-05-13"]) as replay:
        assert run(definitions(lake_root, replay.base_url), "index_membership_job", partition_key="2022-05-13").success
    result = run(definitions(lake_root), "index_membership_table_job")
    assert result.success and evaluations(result) == {}
    assert "no stored portfolio of any index" in metadata(result, "index_membership")["skipped_checks"].value


def test_portfolios_of_other_indices_from_their_downloads(lake_root, query_tables, capsys):
    files = [str(p) for p in recorded_csvs() if p.name[:4] in ("IBXX", "IBRA")]
    assert cli.main(["--lake", str(lake_root), "import-index-csv", *files]) == 0
    edited = next(p for p in recorded_csvs() if "EDITED" in p.name)
    assert cli.main(["--lake", str(lake_root), "import-index-csv", str(edited)]) == 1
    assert edited.name in capsys.readouterr().err
    assert cli.main(["--lake", str(lake_root), "import-index-csv", "--allow-altered", str(edited)]) == 0
    result = run(definitions(lake_root), "index_portfolios_job")
    assert result.success
    assert "SMLLDia_02-07-25_EDITED.csv" in metadata(result, "index_portfolios")["altered_copies"].value
    rows = query_tables(lake_root, "SELECT indice, DataCarteira, round(sum(part), 2) AS part, count(*) AS n "
                                   "FROM b3_refined_db.index_portfolios GROUP BY 1, 2 ORDER BY 1, 2")
    assert set(rows["indice"]) == {"IBRA", "IBXX", "SMLL"}
    assert rows.loc[rows["indice"] == "IBXX", "n"].tolist() == [100, 97]


def test_an_index_portfolio_from_getportfolioday_joins_the_all_indices_table(lake_root, query_tables):
    # the only recorded GetPortfolioDay answers are IBOV's (no recording of another index exists): the index
    # travels in the payload, and the replay answers 404 to any other (index, segment, language)
    recording = next(r for r in recorded_days() if r.date == "2025-04-07")
    with B3Replay(recording) as b3:
        result = run(definitions(lake_root, b3_url=b3.base_url, b3_language=recording.language),
                     "index_portfolio_raw_job", partition_key="2025-04-07|IBOV")
    assert result.success
    assert (lake_root / "raw/index_portfolio/indice=IBOV/date=2025-04-07/GetPortfolioDay.parquet").exists()
    files = [str(p) for p in recorded_csvs() if p.name.startswith("IBXX")]
    assert cli.main(["--lake", str(lake_root), "import-index-csv", *files]) == 0
    assert run(definitions(lake_root), "index_portfolios_job").success
    rows = query_tables(lake_root, "SELECT indice, DataCarteira, count(*) AS n, round(sum(part), 1) AS part, "
                                   "count(classe) AS classes, count(segmento_listagem) AS segments FROM b3_refined_db.index_portfolios "
                                   "GROUP BY 1, 2 ORDER BY 1, 2")
    ibov = rows[rows["indice"] == "IBOV"]
    assert ibov["DataCarteira"].astype(str).tolist() == ["2025-04-07"] and ibov["part"].iloc[0] == 100.0
    assert ibov["n"].iloc[0] == ibov["classes"].iloc[0] == 87, "every API row's Tipo split like a download's"
    assert ibov["segments"].iloc[0] == 83  # 4 of B3's Tipo values name no listing segment


@pytest.mark.slow  # 6.5 s (measured 2026-11-30, --durations=0)
def test_anomaly_scores_are_reproducible_and_charted(lake_root, yahoo_replay, query_tables):
    defs = definitions(lake_root, yahoo_url=yahoo_replay)
    assert run(defs, "ibov_index_job", start="2025-09-01", end="2026-03-12").success
    assert run(defs, "ibov_index_refine_job", start="2025-09-01", end="2026-03-01").success
    result = run(defs, "ibov_anomaly_job")
    assert result.success
    assert evaluations(result)["scores_reproducible"].passed
    meta = metadata(result, "ibov_anomalies")
    assert meta["random_state"].value == 1415 and meta["unscored_days"].value == 19
    table = query_tables(lake_root, "SELECT * FROM b3_refined_db.ibov_anomalies ORDER BY data")
    assert len(table) == meta["scored_days"].value and table["anomalia"].sum() >= 1
    assert (lake_root / "charts" / "ibov_anomalies.png").read_bytes()[:4] == b"\x89PNG"


def test_the_configured_indices_setting(monkeypatch):
    monkeypatch.setenv("B3_INDICES", " ibov, IBXX,SMLL,IBXX ")
    assert configured_indices() == ["IBOV", "IBXX", "SMLL"]
    monkeypatch.setenv("B3_INDICES", "IBOV;IBXX")
    with pytest.raises(ValueError, match="B3_INDICES"):
        configured_indices()
    monkeypatch.delenv("B3_INDICES")
    assert configured_indices() == ["IBOV"]


@pytest.mark.parametrize(("when", "keys", "skipped"), [
    (dt.datetime(2025, 4, 7, 10, tzinfo=dt.timezone(dt.timedelta(hours=-3))), True, None),
    (dt.datetime(2025, 4, 5, 10, tzinfo=dt.timezone(dt.timedelta(hours=-3))), False, "2025-04-05 is a Saturday"),
    (dt.datetime(2025, 4, 18, 10, tzinfo=dt.timezone(dt.timedelta(hours=-3))), False, "2025-04-18 is a B3 holiday"),
])
def test_the_index_schedules_yield_one_run_per_configured_index_on_b3_sessions(monkeypatch, when, keys, skipped):
    from b3_dagster.defs.automation import schedules
    from b3_dagster.defs.automation.schedules import (
        index_history_daily_schedule,
        index_membership_daily_schedule,
        index_portfolios_daily_schedule,
    )

    INDICES = ["IBOV", "IBXX", "SMLL"]  # as B3_INDICES=IBOV,IBXX,SMLL gives when the code location loads
    monkeypatch.setattr(schedules, "INDICES", INDICES)

    with dg.instance_for_test() as instance:
        ticks = {schedule.name: schedule(dg.build_schedule_context(instance=instance, scheduled_execution_time=when))
                 for schedule in (index_portfolios_daily_schedule, index_history_daily_schedule,
                                  index_membership_daily_schedule)}
    if not keys:
        assert all(isinstance(tick, dg.SkipReason) and skipped in tick.skip_message for tick in ticks.values())
        return
    assert [r.partition_key for r in ticks["index_portfolios_daily_schedule"]] == [f"2025-04-07|{i}" for i in INDICES]
    assert [r.partition_key for r in ticks["index_history_daily_schedule"]] == [f"2025|{i}" for i in INDICES]
    assert [r.partition_key for r in ticks["index_membership_daily_schedule"]] == ["2025-04-07"]
    runs = [r.run_key for tick in ticks.values() for r in tick]
    assert len(runs) == len(set(runs)), "each run has its own run key: one index failing does not block another"
    # the current year's grid is fetched again next session: a new run key (Dagster drops a run key it has seen)
    with dg.instance_for_test() as instance:
        tomorrow = index_history_daily_schedule(dg.build_schedule_context(
            instance=instance, scheduled_execution_time=when + dt.timedelta(days=1)))
    assert [r.partition_key for r in tomorrow] == [f"2025|{i}" for i in INDICES]
    assert not {r.run_key for r in tomorrow} & set(runs)


def test_the_index_schedules_are_loaded_with_their_jobs():
    from b3_dagster.definitions import defs as loaded

    jobs = {s.name: s.job_name for s in loaded.schedules if s.name.startswith("index_")}
    assert jobs == {"index_portfolios_daily_schedule": "index_portfolio_raw_job",
                    "index_history_daily_schedule": "index_history_job",
                    "index_membership_daily_schedule": "index_membership_job"}
