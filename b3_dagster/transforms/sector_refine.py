"""The refine step of the portfolio (seed 000's Glue job): (A) place each raw row in its canonical sector and
aggregate by sector and day, (B) rename to the names users query, (C) a reproducible date calculation.

The step is one SQL statement, written once. It joins the raw rows with the sector mapping
(``transforms.sector_dimension.map_sectors``: one canonical ``setor_economico``/``subsetor``/``Setor`` per
(DataCarteira, cod)), so ``Setor`` is the stable canonical label, never the text B3 printed. DuckDB runs it
in-process; ``refine_sql(..., dialect="spark")`` renders the same statement for the AWS Glue (Spark) job through
sqlglot, so the two engines cannot drift. A raw row the mapping lacks (a ticker no classification vintage places)
drops out of the join: the refine asset's ``every_ticker_placed`` check names it, and the table commit refuses the
day (its ticker count no longer matches raw), so a sector is never invented.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import duckdb
import pandas as pd
import pyarrow as pa
import sqlglot

from b3_dagster.model import (
    RAW_COLUMNS,
    RAW_SCHEMA,
    REFINED_COLUMNS,
    REFINED_SCHEMA,
    SECTOR_MAPPING_COLUMNS,
    SECTOR_MAPPING_SCHEMA,
)

RAW_VIEW = "raw_portfolio"
MAPPING_VIEW = "sector_mapping"

# Written in DuckDB's dialect; the column order is REFINED_SCHEMA's. `part` has three decimals: summing it as
# DECIMAL is exact in every engine.
_REFINE_TEMPLATE = """
SELECT
    m.Setor AS Setor,
    m.setor_economico AS setor_economico,
    m.subsetor AS subsetor,
    r.DataCarteira AS Data,
    CAST(SUM(CAST(r.part AS DECIMAL(12, 3))) AS DOUBLE) AS soma_part,
    CAST(COUNT(r.cod) AS BIGINT) AS total_codigo,
    CAST(SUM(r.theoricalQty) AS BIGINT) AS soma_qtd_teorica,
    CAST('{processing_date}' AS DATE) AS data_processamento,
    CAST(DATE_DIFF('day', r.DataCarteira, CAST('{processing_date}' AS DATE)) AS INT) AS dias_desde_carteira
FROM {source} AS r
JOIN {mapping} AS m ON m.DataCarteira = r.DataCarteira AND m.cod = r.cod
GROUP BY m.Setor, m.setor_economico, m.subsetor, r.DataCarteira
ORDER BY Data, Setor
"""


def refine_sql(processing_date: dt.date, dialect: str = "duckdb", source: str = RAW_VIEW,
               mapping: str = MAPPING_VIEW) -> str:
    """The refine statement for ``dialect`` (``duckdb`` or ``spark``), reading the raw rows from ``source`` and the
    sector mapping (SECTOR_MAPPING_COLUMNS) from ``mapping``."""
    if not isinstance(processing_date, dt.date):
        raise TypeError("processing_date must be a date")
    sql = _REFINE_TEMPLATE.format(processing_date=processing_date.isoformat(), source=source, mapping=mapping)
    return sqlglot.transpile(sql, read="duckdb", write=dialect, pretty=True)[0]


@lru_cache(maxsize=1)
def _shipped_dimension():
    from b3_dagster.sources.b3_classification import load_shipped_classification
    from b3_dagster.transforms.sector_dimension import SectorDimension

    return SectorDimension.from_classification(load_shipped_classification())


def shipped_sector_mapping(raw: pd.DataFrame) -> pd.DataFrame:
    """The sector mapping of ``raw`` by the vintages shipped with the package (the refine asset uses the lake's
    classification history instead, which adds the vintages dropped into or downloaded to the lake)."""
    from b3_dagster.transforms.sector_dimension import map_sectors

    return map_sectors(raw, _shipped_dimension()).rows


def mapping_table(mapping: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(mapping[SECTOR_MAPPING_COLUMNS], schema=SECTOR_MAPPING_SCHEMA, preserve_index=False)


def refine_portfolio(raw: pd.DataFrame, processing_date: dt.date, mapping: pd.DataFrame | None = None
                     ) -> pd.DataFrame:
    """Raw rows (RAW_COLUMNS, any number of days) -> one row per (canonical Setor, Data), typed as REFINED_SCHEMA.

    ``mapping``: the canonical sector of each (DataCarteira, cod) (``map_sectors(...).rows``); by default the
    shipped vintages' mapping. ``processing_date`` is recorded in ``data_processamento`` and ``dias_desde_carteira``
    counts from it, so a re-run with the same inputs gives the same rows (unlike a bare CURRENT_DATE).
    """
    missing = [name for name in RAW_COLUMNS if name not in raw.columns]
    if missing:
        raise ValueError(f"raw rows lack columns {missing}")
    table = pa.Table.from_pandas(raw[RAW_COLUMNS], schema=RAW_SCHEMA, preserve_index=False)
    mapping = shipped_sector_mapping(raw) if mapping is None else mapping
    with duckdb.connect() as connection:
        connection.register(RAW_VIEW, table)
        connection.register(MAPPING_VIEW, mapping_table(mapping))
        result = connection.sql(refine_sql(processing_date)).to_arrow_table()
    refined = result.cast(REFINED_SCHEMA).to_pandas(date_as_object=True)
    return refined[REFINED_COLUMNS]
