"""Rebuilding the Iceberg tables from raw, the system of record (``b3-dagster rebuild-tables``).

For a lake from before the Iceberg tables (``refined/Data=.../Setor=...`` folders and ``catalog.duckdb``), and for
any doubt about a table: every raw day is refined again in process and each table is replaced in one commit. The
old layout's files are listed by ``retired_artefacts`` (nothing reads them any more).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa

from b3_dagster.calendar import B3_TIMEZONE
from b3_dagster.errors import UnplacedSectors
from b3_dagster.model import CLOSE_DATE, DEFAULT_INDEX, INDEX_SCHEMA, OFFICIAL_CLOSE, REFINED_SCHEMA
from b3_dagster.sources.b3_index_history import on_current_scale
from b3_dagster.storage.bar_store import BarStore
from b3_dagster.storage.b3_indices_store import B3IndicesStore
from b3_dagster.storage.lake import Lake
from b3_dagster.storage.portfolio_store import PortfolioStore
from b3_dagster.storage.tables import (
    INDEX_CLOSES_TABLE_DEF,
    INDEX_TABLE_DEF,
    PORTFOLIO_TABLE_DEF,
    CommitOutcome,
    IcebergTables,
)
from b3_dagster.transforms.index_features import refine_index, with_official_closes
from b3_dagster.storage.classification_store import ClassificationStore
from b3_dagster.transforms.sector_dimension import SectorDimension, map_sectors
from b3_dagster.transforms.sector_refine import refine_portfolio

OLD_LAYOUT = ("refined/", "catalog.duckdb")


def _replace_all(tables: IcebergTables, table_def, rows: pa.Table) -> CommitOutcome:
    """Commit ``rows`` for their keys, and drop keys the table holds that raw no longer has (none, normally)."""
    keys = table_def.keys_of(rows)
    return tables.commit(table_def, rows, keys, {"b3.rebuilt_from": "raw"})


def rebuild_portfolio_table(tables: IcebergTables, processing_date: dt.date | None = None) -> CommitOutcome | None:
    store = PortfolioStore(tables.lake)
    days = store.raw_days()
    if not days:
        return None
    processing_date = processing_date or pd.Timestamp.now(tz=B3_TIMEZONE).date()
    raw = pd.concat([store.read_raw(day).rows for day in days], ignore_index=True)
    # the same classification history as the refine asset (shipped vintages plus the lake's); a ticker no vintage
    # places stops the rebuild (UnplacedSectors, naming it), never a day short of a ticker
    classification, _ = ClassificationStore(tables.lake).history()
    mapping = map_sectors(raw, SectorDimension.from_classification(classification))
    if mapping.problems:
        raise UnplacedSectors(mapping.problems)
    refined = refine_portfolio(raw, processing_date, mapping.rows)
    return _replace_all(tables, PORTFOLIO_TABLE_DEF,
                        pa.Table.from_pandas(refined, schema=REFINED_SCHEMA, preserve_index=False))


def rebuild_index_table(tables: IcebergTables) -> CommitOutcome | None:
    store = BarStore(tables.lake)
    days = store.raw_days()
    if not days:
        return None
    refined = refine_index(store.read_raw(days), days[0])
    refined = with_official_closes(refined, official_ibov_closes(tables.lake), official_date=CLOSE_DATE,
                                   official_close=OFFICIAL_CLOSE)
    return _replace_all(tables, INDEX_TABLE_DEF,
                        pa.Table.from_pandas(refined[INDEX_SCHEMA.names], schema=INDEX_SCHEMA, preserve_index=False))


def official_ibov_closes(lake: Lake) -> pd.DataFrame:
    """B3's official IBOV closes on the current scale, from raw (every stored year grid and Evolução Diária
    download, the same choice per year as index_closes): what ``fechamento_oficial_b3`` holds. Empty without any."""
    closes, _ = B3IndicesStore(lake).closes([DEFAULT_INDEX])
    return on_current_scale(closes)


def rebuild_index_closes_table(tables: IcebergTables) -> CommitOutcome | None:
    """b3_refined_db.index_closes from raw, as the index_closes asset writes it (its checks run with the asset)."""
    closes, _ = B3IndicesStore(tables.lake).closes()
    if closes.empty:
        return None
    return _replace_all(tables, INDEX_CLOSES_TABLE_DEF, pa.Table.from_pandas(
        closes[INDEX_CLOSES_TABLE_DEF.schema.names], schema=INDEX_CLOSES_TABLE_DEF.schema, preserve_index=False))


def retired_artefacts(lake: Lake) -> list[str]:
    return [info.key for prefix in OLD_LAYOUT for info in lake.list(prefix)]
