"""The local catalog answers seed 000's Athena queries unchanged."""

import datetime as dt

import pytest

from b3_dagster.storage.catalog import CatalogError, DuckDBCatalog, to_duckdb_sql
from b3_dagster.storage.lake import LocalLake
from b3_dagster.storage.portfolio_store import PortfolioStore, portfolio_table_spec, publish_portfolio_day
from b3_dagster.transforms.sectors import refine_portfolio
from b3_dagster_tests.storage.test_portfolio_store import snapshot_of

# Seed 000's README, "Queries de Exemplo", verbatim.
SEED_QUERIES = [
    "SELECT * FROM default.tb_ibov_refined LIMIT 10;",
    "SELECT SUM(soma_part) AS total_participacao FROM default.tb_ibov_refined;",
    "SELECT setor, SUM(soma_part) AS total_part\nFROM default.tb_ibov_refined\nGROUP BY setor\nORDER BY total_part DESC;",
]


@pytest.fixture
def published(lake_root, recordings):
    store = PortfolioStore(LocalLake(lake_root))
    catalog = DuckDBCatalog(lake_root / "catalog.duckdb")
    refined_by_day = {}
    for recording in recordings.values():
        snapshot = snapshot_of(recording)
        store.write_raw(snapshot)
        refined = refine_portfolio(snapshot.rows, dt.date(2025, 6, 1))
        store.write_refined(snapshot.portfolio_date, refined)
        refined_by_day[snapshot.portfolio_date] = publish_portfolio_day(store, catalog, snapshot.portfolio_date)
    return store, catalog, refined_by_day


def test_seed_queries_run_unchanged(published):
    _, catalog, refined_by_day = published
    first, total, by_sector = (catalog.query(sql) for sql in SEED_QUERIES)
    assert len(first) == 10
    assert list(first.columns) == portfolio_table_spec().schema.names
    assert total["total_participacao"].iloc[0] == pytest.approx(100.0 * len(refined_by_day), abs=0.01)
    assert list(by_sector["total_part"]) == sorted(by_sector["total_part"], reverse=True)
    assert len(by_sector) == len({s for frame in refined_by_day.values() for s in frame["Setor"]})


def test_default_needs_quoting_in_duckdb_and_sqlglot_adds_it():
    assert '"default".tb_ibov_refined' in to_duckdb_sql("SELECT * FROM default.tb_ibov_refined")


def test_publishing_a_day_again_replaces_its_rows(published):
    store, catalog, refined_by_day = published
    day = max(refined_by_day)
    publish_portfolio_day(store, catalog, day)
    counts = catalog.query("SELECT Data, COUNT(*) AS n FROM default.tb_ibov_refined GROUP BY Data")
    assert dict(zip(counts["Data"].astype(str), counts["n"])) == {
        str(d): len(frame) for d, frame in refined_by_day.items()}


def test_partitions_are_registered_with_their_locations(published):
    store, catalog, refined_by_day = published
    partitions = catalog.partitions(portfolio_table_spec())
    assert len(partitions) == sum(len(frame) for frame in refined_by_day.values())
    for partition in partitions:
        day, sector = partition.values
        assert partition.location.endswith(f"Data={day}/Setor=" + partition.location.rsplit("Setor=", 1)[1])
        assert (store.lake.root / partition.location).is_dir()
        assert sector in set(refined_by_day[dt.date.fromisoformat(day)]["Setor"])


def test_query_before_anything_was_published_says_so(tmp_path):
    with pytest.raises(CatalogError, match="materialise the table assets first"):
        DuckDBCatalog(tmp_path / "none.duckdb").query("SELECT 1")
