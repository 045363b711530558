"""The refined tables as Iceberg tables in the local SQL catalog: commits, refusals, time travel, pruning, races,
maintenance, and SQL through DuckDB (seed 000's and seed 001's queries unchanged)."""

from __future__ import annotations

import datetime as dt
import os
import time

import pandas as pd
import pyarrow as pa
import pytest
from pyiceberg.expressions import EqualTo

from b3_dagster.calendar import sessions
from b3_dagster.errors import QueryError, StagingIncomplete, TableCommitConflict, TableCommitRefused
from b3_dagster.model import REFINED_SCHEMA
from b3_dagster.storage import staging
from b3_dagster.storage.bar_store import SEED_001_QUERY
from b3_dagster.storage.lake import LocalLake
from b3_dagster.storage.portfolio_store import expected_refined
from b3_dagster.storage.tables import (
    INDEX_TABLE_DEF,
    PORTFOLIO_TABLE_DEF,
    AsOf,
    connect,
    open_tables,
    run_query,
    to_duckdb_sql,
)
from b3_dagster.model import INDEX_SCHEMA
from b3_dagster.transforms.index_features import index_features
from b3_dagster.transforms.sector_refine import refine_portfolio, shipped_sector_mapping
from b3_dagster_tests.helpers import snapshot_of
from b3_dagster_tests.helpers import bars

# Seed 000's README, "Queries de Exemplo", verbatim.
SEED_QUERIES = [
    "SELECT * FROM default.tb_ibov_refined LIMIT 10;",
    "SELECT SUM(soma_part) AS total_participacao FROM default.tb_ibov_refined;",
    "SELECT setor, SUM(soma_part) AS total_part\nFROM default.tb_ibov_refined\nGROUP BY setor\nORDER BY total_part DESC;",
]


def synthetic(days: list[dt.date], marker: float = 1.0, sectors: int = 30) -> pa.Table:
    """Refined-shaped rows; ``marker`` in soma_part tells which commit wrote a row."""
    return pa.Table.from_pylist(
        [{"Setor": f"Setor {s:02d}", "Data": day, "soma_part": marker, "total_codigo": 3, "soma_qtd_teorica": 10,
          "data_processamento": day, "dias_desde_carteira": 0} for day in days for s in range(sectors)],
        schema=REFINED_SCHEMA)


def keys(days):
    return [day.isoformat() for day in days]


@pytest.fixture
def tables(lake_root):
    return open_tables(LocalLake(lake_root))


@pytest.fixture
def recorded(tables, recordings):
    """Both recorded B3 days, refined, committed one commit per day."""
    refined_by_day = {}
    for recording in recordings.values():
        snapshot = snapshot_of(recording)
        refined = refine_portfolio(snapshot.rows, dt.date(2025, 6, 1))
        tables.commit(PORTFOLIO_TABLE_DEF, pa.Table.from_pandas(refined), [snapshot.portfolio_date.isoformat()])
        refined_by_day[snapshot.portfolio_date] = refined
    return refined_by_day


def test_seed_000_queries_run_unchanged(tables, recorded):
    connection = connect(tables)
    first, total, by_sector = (run_query(connection, sql) for sql in SEED_QUERIES)
    assert len(first) == 10
    assert list(first.columns) == REFINED_SCHEMA.names
    assert total["total_participacao"].iloc[0] == pytest.approx(100.0 * len(recorded), abs=0.01)
    assert list(by_sector["total_part"]) == sorted(by_sector["total_part"], reverse=True)
    assert len(by_sector) == len({s for frame in recorded.values() for s in frame["Setor"]})


def test_the_table_lives_in_the_lake_with_a_sqlite_catalog(tables, recorded, lake_root):
    assert (lake_root / "iceberg_catalog.db").is_file()
    data_files = list((lake_root / "warehouse" / "default" / "tb_ibov_refined" / "data").rglob("*.parquet"))
    assert sorted({f.parent.name for f in data_files}) == ["Data_year=2022", "Data_year=2025"]
    assert len(data_files) == 2, "about 30 rows a day: one file per year, not one per day and sector"


def test_a_commit_replaces_exactly_its_days_in_one_snapshot(tables):
    year = sessions("2025-01-01", "2025-12-31")
    first = tables.commit(PORTFOLIO_TABLE_DEF, synthetic(year, 1.0), keys(year))
    again = year[40:43]  # three days in one run, spanning no month edge
    second = tables.commit(PORTFOLIO_TABLE_DEF, synthetic(again, 2.0, sectors=29), keys(again))
    assert [s["snapshot_id"] for s in tables.snapshots(PORTFOLIO_TABLE_DEF)] == [first.snapshot_id,
                                                                                second.snapshot_id]
    rows = tables.scan(PORTFOLIO_TABLE_DEF).to_pandas()
    per_day = rows.groupby("Data").agg(n=("Setor", "count"), marker=("soma_part", "max"))
    assert per_day.loc[again, "n"].tolist() == [29] * 3 and per_day.loc[again, "marker"].tolist() == [2.0] * 3
    others = per_day.drop(index=again)
    assert len(others) == len(year) - 3 and set(others["n"]) == {30} and set(others["marker"]) == {1.0}
    # before the commit a reader sees none of the new days
    before = tables.scan(PORTFOLIO_TABLE_DEF, snapshot_id=first.snapshot_id).to_pandas()
    assert set(before["soma_part"]) == {1.0} and len(before) == 30 * len(year)


@pytest.mark.parametrize(("rows_days", "commit_days", "message"), [
    (1, 2, "no rows for ['2025-01-03']"),
    (0, 1, "no rows for ['2025-01-02']"),
    (2, 1, "rows for ['2025-01-03'] that the run did not ask for"),
])
def test_a_commit_that_would_lose_a_day_is_refused(tables, rows_days, commit_days, message):
    days = sessions("2025-01-02", "2025-01-03")
    committed = tables.commit(PORTFOLIO_TABLE_DEF, synthetic(days), keys(days))
    with pytest.raises(TableCommitRefused, match=message.replace("[", r"\[").replace("]", r"\]")):
        tables.commit(PORTFOLIO_TABLE_DEF, synthetic(days[:rows_days], 9.0), keys(days[:commit_days]))
    assert tables.snapshot_id_at(PORTFOLIO_TABLE_DEF, None) == committed.snapshot_id
    assert len(tables.scan(PORTFOLIO_TABLE_DEF)) == 60


def test_time_travel_by_snapshot_id_and_by_timestamp(tables):
    days = sessions("2025-03-10", "2025-03-14")
    assert len(days) == 5
    first = tables.commit(PORTFOLIO_TABLE_DEF, synthetic(days, 1.0), keys(days))
    time.sleep(0.01)
    second = tables.commit(PORTFOLIO_TABLE_DEF, synthetic(days[:1], 5.0), keys(days[:1]))
    sql = "SELECT SUM(soma_part) AS total FROM default.tb_ibov_refined"
    assert run_query(connect(tables), sql)["total"][0] == 30 * 4 + 30 * 5
    assert run_query(connect(tables, AsOf(snapshot_id=first.snapshot_id)), sql)["total"][0] == 30 * 5
    between = AsOf.parse((second.committed_at - dt.timedelta(milliseconds=1)).isoformat())
    assert run_query(connect(tables, between), sql)["total"][0] == 30 * 5
    assert run_query(connect(tables, AsOf.parse(second.committed_at.isoformat())), sql)["total"][0] == 270
    before_anything = AsOf(timestamp=first.committed_at - dt.timedelta(days=1))
    assert pd.isna(run_query(connect(tables, before_anything), sql)["total"][0]), "no rows before the first commit"
    with pytest.raises(QueryError, match="no table has a snapshot 12345678901234"):
        connect(tables, AsOf(snapshot_id=12345678901234))


@pytest.mark.parametrize("text", ["yesterday", "2025-13-01", "12"])
def test_as_of_must_be_a_snapshot_id_or_a_timestamp(text):
    with pytest.raises(QueryError, match="neither a snapshot id nor an ISO timestamp"):
        AsOf.parse(text)


def test_a_day_filter_prunes_to_one_file(tables):
    three_years = sessions("2023-01-01", "2025-12-31")
    tables.commit(PORTFOLIO_TABLE_DEF, synthetic(three_years), keys(three_years))
    assert tables.planned_files(PORTFOLIO_TABLE_DEF) == 3
    assert tables.planned_files(PORTFOLIO_TABLE_DEF, EqualTo("Data", "2025-03-05")) == 1


def test_a_commit_that_loses_a_race_is_replayed_on_the_new_snapshot(tables, lake_root):
    days = sessions("2025-02-03", "2025-02-07")
    tables.commit(PORTFOLIO_TABLE_DEF, synthetic(days, 1.0), keys(days))
    rival = open_tables(LocalLake(lake_root))
    stale = tables.load(PORTFOLIO_TABLE_DEF)  # what a writer read before the rival committed
    won = rival.commit(PORTFOLIO_TABLE_DEF, synthetic(days[:3], 2.0), keys(days[:3]))

    from b3_dagster.storage import tables as module

    with pytest.MonkeyPatch.context() as patch:  # this writer starts from the stale table it had read
        loads = iter([stale])
        original = module.IcebergTables.ensure
        patch.setattr(module.IcebergTables, "ensure", lambda self, d: next(loads, None) or original(self, d))
        late = tables.commit(PORTFOLIO_TABLE_DEF, synthetic(days[2:], 3.0), keys(days[2:]))
    assert late.attempts == 2
    history = tables.load(PORTFOLIO_TABLE_DEF).snapshots()
    assert history[-1].parent_snapshot_id == won.snapshot_id, "serialised: the late commit sits on the winner"
    markers = tables.scan(PORTFOLIO_TABLE_DEF).to_pandas().groupby("Data")["soma_part"].agg(set)
    assert markers.tolist() == [{2.0}, {2.0}, {3.0}, {3.0}, {3.0}], "each day whole from one commit, never a mix"


def test_a_namespace_created_by_another_writer_between_check_and_insert_is_used(lake_root, monkeypatch):
    # both of the demo's processes create b3_refined_db when it is missing; pyiceberg's SQL catalog checks, then
    # inserts: the writer whose insert comes second got "UNIQUE constraint failed: iceberg_namespace_properties"
    tables, rival = open_tables(LocalLake(lake_root)), open_tables(LocalLake(lake_root))
    checked = tables.catalog.namespace_exists

    def rival_creates_it_right_after_the_check(namespace):
        answer = checked(namespace)
        rival.catalog.create_namespace_if_not_exists(namespace)
        return answer

    monkeypatch.setattr(tables.catalog, "namespace_exists", rival_creates_it_right_after_the_check)
    created = tables.ensure(INDEX_TABLE_DEF)
    assert created.name() == ("b3_refined_db", "ibov_refined")
    assert rival.load(INDEX_TABLE_DEF) is not None


def test_a_commit_that_keeps_losing_fails_clearly_and_commits_nothing(lake_root):
    days = sessions("2025-02-03", "2025-02-07")
    tables = open_tables(LocalLake(lake_root), commit_retries=0)
    tables.commit(PORTFOLIO_TABLE_DEF, synthetic(days, 1.0), keys(days))
    stale = tables.load(PORTFOLIO_TABLE_DEF)
    won = open_tables(LocalLake(lake_root)).commit(PORTFOLIO_TABLE_DEF, synthetic(days[:3], 2.0), keys(days[:3]))
    from b3_dagster.storage import tables as module

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module.IcebergTables, "ensure", lambda self, d: stale)
        with pytest.raises(TableCommitConflict, match="nothing of this commit was committed. Run it again"):
            tables.commit(PORTFOLIO_TABLE_DEF, synthetic(days[2:], 3.0), keys(days[2:]))
    assert tables.snapshot_id_at(PORTFOLIO_TABLE_DEF, None) == won.snapshot_id
    assert 3.0 not in set(tables.scan(PORTFOLIO_TABLE_DEF)["soma_part"].to_pylist())


def test_maintenance_expires_old_snapshots_and_removes_orphans(tables, lake_root):
    days = sessions("2025-05-05", "2025-05-09")
    for marker in (1.0, 2.0, 3.0):
        last = tables.commit(PORTFOLIO_TABLE_DEF, synthetic(days, marker), keys(days))
    data = lake_root / "warehouse" / "default" / "tb_ibov_refined" / "data"
    orphan = data / "Data_year=2025" / "00000-0-left-by-a-killed-commit.parquet"
    orphan.write_bytes(b"PAR1 half written")
    fresh = data / "Data_year=2025" / "00000-0-a-commit-in-flight.parquet"
    fresh.write_bytes(b"PAR1 being written")
    old = time.time() - 7200
    os.utime(orphan, (old, old))
    rows_before = tables.scan(PORTFOLIO_TABLE_DEF)

    outcome = tables.maintain(PORTFOLIO_TABLE_DEF, snapshot_retention=dt.timedelta(0),
                              orphan_grace=dt.timedelta(hours=1))
    assert (outcome.expired_snapshots, outcome.kept_snapshots) == (2, 1)
    assert not orphan.exists() and fresh.exists(), "the grace keeps files a commit in flight is writing"
    assert len([f for f in outcome.removed_files if f.endswith(".parquet")]) == 3  # orphan + 2 expired versions
    assert tables.snapshot_id_at(PORTFOLIO_TABLE_DEF, None) == last.snapshot_id
    assert tables.scan(PORTFOLIO_TABLE_DEF).equals(rows_before)
    assert len(list(data.rglob("*.parquet"))) == 2  # the live file and the in-flight one


# ---- staging -------------------------------------------------------------------------------------------------------
@pytest.fixture
def staged(tables, recordings):
    """The 2025-04-07 recording refined into a run's staging folder, with its expectation from raw."""
    snapshot = snapshot_of(recordings["2025-04-07"])
    prefix = staging.run_prefix("ibov_sector_refined", "run-1")
    refined = refine_portfolio(snapshot.rows, dt.date(2025, 6, 1))
    staging.write_rows(tables.lake, prefix, pa.Table.from_pandas(refined, schema=REFINED_SCHEMA,
                                                                 preserve_index=False))
    staging.write_expected(tables.lake, prefix, expected_refined(snapshot.rows))
    return prefix, refined, snapshot.rows


def _restage(tables, prefix, refined):
    staging.write_rows(tables.lake, prefix, pa.Table.from_pandas(refined, schema=REFINED_SCHEMA,
                                                                 preserve_index=False))


@pytest.mark.parametrize(("damage", "reason"), [
    (lambda t, p, r: staging.remove(t.lake, p), "2025-04-07: the refine of this run did not finish"),
    (lambda t, p, r: _restage(t, p, r.iloc[0:0]), "2025-04-07: absent or empty in staging"),
    (lambda t, p, r: _restage(t, p, r.iloc[1:]), "2025-04-07: partial, "),
    (lambda t, p, r: _restage(t, p, r.assign(total_codigo=r["total_codigo"] - (r.index == 0))),
     "2025-04-07: total_codigo sums to"),
    (lambda t, p, r: t.lake.write_bytes(p + "part-0.parquet", b"PAR1 cut short"), "is not readable Parquet"),
])
def test_damaged_staging_is_refused_naming_the_day_and_the_table_keeps_it(tables, staged, damage, reason):
    prefix, refined, raw = staged
    committed = staging.commit_staged(tables, PORTFOLIO_TABLE_DEF, prefix, ["2025-04-07"])
    assert not tables.lake.list(prefix), "staging is removed once committed"
    # the next run stages the same day again, damaged
    _restage(tables, prefix, refined)
    staging.write_expected(tables.lake, prefix, expected_refined(raw))
    damage(tables, prefix, refined)
    with pytest.raises(StagingIncomplete, match=reason):
        staging.commit_staged(tables, PORTFOLIO_TABLE_DEF, prefix, ["2025-04-07"])
    assert tables.snapshot_id_at(PORTFOLIO_TABLE_DEF, None) == committed.snapshot_id
    assert len(tables.scan(PORTFOLIO_TABLE_DEF)) == len(refined)


def test_spark_style_staging_is_read_with_the_day_from_its_folder(tables, staged):
    """The Glue job writes Data=<day>/part-*.parquet without the Data column, plus _SUCCESS markers."""
    prefix, refined, _ = staged
    spark_prefix = staging.run_prefix("ibov_sector_refined", "glue-run")
    body = pa.Table.from_pandas(refined.drop(columns=["Data"]), preserve_index=False)
    from b3_dagster.storage.layout import parquet_bytes

    tables.lake.write_bytes(spark_prefix + "Data=2025-04-07/part-00000-abc.snappy.parquet", parquet_bytes(body))
    tables.lake.write_bytes(spark_prefix + "_SUCCESS", b"")
    tables.lake.write_bytes(spark_prefix + staging.EXPECTED_FILE, tables.lake.read_bytes(prefix +
                                                                                          staging.EXPECTED_FILE))
    outcome = staging.commit_staged(tables, PORTFOLIO_TABLE_DEF, spark_prefix, ["2025-04-07"])
    assert outcome.rows == len(refined)
    pd.testing.assert_frame_equal(
        tables.scan(PORTFOLIO_TABLE_DEF).to_pandas(date_as_object=True).sort_values("Setor").reset_index(drop=True),
        refined.sort_values("Setor").reset_index(drop=True), check_dtype=False)


def test_a_sector_name_longer_than_a_path_segment_lands_in_the_table(tables, recordings):
    """No sector becomes a path any more: a 300-byte sector name refines and is committed (issue #11, item 7)."""
    snapshot = snapshot_of(recordings["2025-04-07"])
    long_name = "Setor " + "é" * 150  # 306 bytes in UTF-8, over the 255-byte limit of a file name
    rows = snapshot.rows.copy()
    mapping = shipped_sector_mapping(rows)
    mapping.loc[mapping["Setor"] == mapping["Setor"].iloc[0], "Setor"] = long_name
    refined = refine_portfolio(rows, dt.date(2025, 6, 1), mapping)
    prefix = staging.run_prefix("ibov_sector_refined", "run-long")
    staging.write_rows(tables.lake, prefix, pa.Table.from_pandas(refined, schema=REFINED_SCHEMA,
                                                                 preserve_index=False))
    staging.write_expected(tables.lake, prefix, expected_refined(rows, mapping))
    staging.commit_staged(tables, PORTFOLIO_TABLE_DEF, prefix, ["2025-04-07"])
    answer = run_query(connect(tables), f"SELECT Setor, total_codigo FROM default.tb_ibov_refined "
                                        f"WHERE Setor = '{long_name}'")
    assert len(long_name.encode()) > 255 and answer["Setor"].tolist() == [long_name]


def test_a_table_made_before_the_sector_columns_gains_them_and_keeps_its_rows(tables, lake_root):
    """A tb_ibov_refined committed by the version before the sector dimension (no setor_economico/subsetor): the next
    commit adds the columns (Iceberg schema evolution); old rows read them as null, in scans and in SQL."""
    import dataclasses

    old_schema = pa.schema([f for f in REFINED_SCHEMA if f.name not in ("setor_economico", "subsetor")])
    old_def = dataclasses.replace(PORTFOLIO_TABLE_DEF, schema=old_schema)
    day1, day2 = dt.date(2025, 4, 7), dt.date(2025, 4, 8)
    tables.commit(old_def, synthetic([day1]).select(old_schema.names).cast(old_schema), keys([day1]))
    assert len(tables.scan(PORTFOLIO_TABLE_DEF)) == 30  # read with today's definition before any new commit
    assert run_query(connect(tables), "SELECT COUNT(*) AS n FROM default.tb_ibov_refined")["n"][0] == 30

    new_rows = synthetic([day2]).to_pandas()
    new_rows["setor_economico"], new_rows["subsetor"] = "Financeiro", "Intermediários Financeiros"
    tables.commit(PORTFOLIO_TABLE_DEF, pa.Table.from_pandas(new_rows, schema=REFINED_SCHEMA, preserve_index=False),
                  keys([day2]))
    names = [field.name for field in tables.load(PORTFOLIO_TABLE_DEF).schema().fields]
    assert {"setor_economico", "subsetor"} <= set(names)
    answer = run_query(connect(tables), "SELECT Data, COUNT(*) AS n, COUNT(setor_economico) AS placed "
                                        "FROM default.tb_ibov_refined GROUP BY Data ORDER BY Data")
    assert answer["n"].tolist() == [30, 30] and answer["placed"].tolist() == [0, 30]


def test_a_table_lacking_a_required_column_points_at_rebuild_tables(tables):
    import dataclasses

    from b3_dagster.errors import TableError

    old_schema = pa.schema([f for f in REFINED_SCHEMA if f.name != "total_codigo"])
    day = dt.date(2025, 4, 7)
    tables.commit(dataclasses.replace(PORTFOLIO_TABLE_DEF, schema=old_schema),
                  synthetic([day]).select(old_schema.names).cast(old_schema), keys([day]))
    with pytest.raises(TableError, match="rebuild-tables"):
        tables.commit(PORTFOLIO_TABLE_DEF, synthetic([day]), keys([day]))


# ---- SQL -----------------------------------------------------------------------------------------------------------
def test_default_needs_quoting_in_duckdb_and_sqlglot_adds_it():
    assert '"default".tb_ibov_refined' in to_duckdb_sql("SELECT * FROM default.tb_ibov_refined")


def test_a_sql_typo_is_reported_in_the_users_own_text(tables, recorded):
    with pytest.raises(QueryError) as error:
        run_query(connect(tables), "SELEC Setor FROM default.tb_ibov_refined")
    assert "'SELEC Setor FROM default.tb_ibov_refined'" in str(error.value)
    assert "SELEC AS" not in str(error.value)


def test_without_external_access_files_are_out_of_reach_but_the_tables_answer(tables, recorded, tmp_path):
    connection = connect(tables, external_access=False)
    target = tmp_path / "x"
    with pytest.raises(QueryError, match="disabled by configuration"):
        run_query(connection, f"COPY (SELECT 1) TO '{target}'")
    with pytest.raises(QueryError, match="disabled by configuration"):
        run_query(connection, "SELECT * FROM read_text('/etc/hostname')")
    with pytest.raises(QueryError, match="locked"):
        run_query(connection, "SET enable_external_access = true")
    assert not target.exists()
    assert run_query(connection, SEED_QUERIES[1])["total_participacao"][0] == pytest.approx(200.0, abs=0.01)


def test_seed_001_query_runs_unchanged_on_the_index_table_and_prunes_by_month(tables):
    refined = index_features(bars())
    months = sorted({(y, m) for y, m in zip(refined["year"], refined["month"])})
    tables.commit(INDEX_TABLE_DEF, pa.Table.from_pandas(refined[INDEX_SCHEMA.names], schema=INDEX_SCHEMA,
                                                        preserve_index=False), [f"{y}/{m}" for y, m in months])
    answer = run_query(connect(tables), SEED_001_QUERY)
    october = refined[(refined["year"] == 2025) & (refined["month"] == 10)].sort_values("data", ascending=False)
    expected = october.head(10).reset_index(drop=True)
    assert [ts.date() for ts in pd.to_datetime(answer["data"])] == expected["data"].tolist()
    assert answer["preco_fechamento"].tolist() == expected["preco_fechamento"].tolist()
    assert answer["variacao_pct"].tolist() == pytest.approx(expected["variacao_pct"].tolist())
    assert tables.planned_files(INDEX_TABLE_DEF) == len(months) > 1
    assert tables.planned_files(INDEX_TABLE_DEF, INDEX_TABLE_DEF.filter_for(["2025/10"])) == 1
