"""``b3-dagster rebuild-tables`` (storage/rebuild.py) on the index: ibov_refined's ``fechamento_oficial_b3`` is filled
from B3's official closes in raw (the real 2022 year grid), and b3_refined_db.index_closes is rebuilt beside it."""

from __future__ import annotations

import datetime as dt

import pytest

from b3_dagster.sources.b3_index_history import recorded_grids
from b3_dagster.sources.yahoo_chart import parse_chart
from b3_dagster.storage.bar_store import BarStore
from b3_dagster.storage.b3_indices_store import B3IndicesStore
from b3_dagster.storage.lake import LocalLake
from b3_dagster.storage.rebuild import rebuild_index_closes_table, rebuild_index_table
from b3_dagster.storage.tables import INDEX_CLOSES_TABLE_DEF, INDEX_TABLE_DEF, open_tables

YAHOO_2022_ON = "BVSP_chart_1d_2022-01-03_2026-03-13.derived.json"


@pytest.fixture
def tables(tmp_path):
    from importlib import resources
    from pathlib import Path

    lake = LocalLake(tmp_path / "lake")
    chart = Path(str(resources.files("b3_dagster") / "recordings" / "yahoo" / YAHOO_2022_ON))
    bars = parse_chart(chart.read_bytes(), symbol="^BVSP").bars
    # Yahoo's bars of Nov-Dec 2022 and Jan 2023: B3's 2022 grid covers the first two months, not the third
    BarStore(lake).write_raw(bars[(bars["date"] >= dt.date(2022, 11, 1)) & (bars["date"] <= dt.date(2023, 1, 31))]
                               .reset_index(drop=True), source="recording")
    return open_tables(lake, "sql")


def rows_of(tables, table_def):
    return tables.load(table_def).scan().to_pandas()


def test_rebuild_fills_the_official_close_from_raw_where_b3_published_one(tables):
    grid = next(g for g in recorded_grids() if (g.index, g.year, g.language) == ("IBOV", 2022, "en-us"))
    B3IndicesStore(tables.lake).write_grid("IBOV", 2022, "en-us", grid.path.read_bytes())

    closes = rebuild_index_closes_table(tables)
    assert closes is not None and closes.rows == 250
    assert rebuild_index_table(tables) is not None
    refined = rows_of(tables, INDEX_TABLE_DEF).set_index("data").sort_index()
    official = rows_of(tables, INDEX_CLOSES_TABLE_DEF).set_index("data")["fechamento"]
    in_2022 = refined[refined.index <= dt.date(2022, 12, 31)]
    assert len(in_2022) == 41 and in_2022["fechamento_oficial_b3"].notna().all()
    assert in_2022["fechamento_oficial_b3"].tolist() == official.loc[in_2022.index].tolist()
    assert in_2022.loc[dt.date(2022, 12, 6), "fechamento_oficial_b3"] == 110188.57  # Yahoo: 109,533 (README)
    assert refined.loc[refined.index > dt.date(2022, 12, 31), "fechamento_oficial_b3"].isna().all()
    assert set(refined["fonte_fechamento"]) == {"yahoo"}  # preco_fechamento stays Yahoo's bar


def test_without_official_closes_the_column_stays_null_and_index_closes_is_not_created(tables):
    assert rebuild_index_closes_table(tables) is None
    assert rebuild_index_table(tables) is not None
    assert tables.load(INDEX_CLOSES_TABLE_DEF) is None
    assert rows_of(tables, INDEX_TABLE_DEF)["fechamento_oficial_b3"].isna().all()
