"""The refine step of the portfolio (seed 000's Glue job): (A) aggregate by sector and day, (B) rename to the
names users query, (C) a reproducible date calculation.

The step is one SQL statement, written once. DuckDB runs it in-process; ``refine_sql(..., dialect="spark")``
renders the same statement for the AWS Glue (Spark) job through sqlglot, so the two engines cannot drift.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pyarrow as pa
import sqlglot

from b3_dagster.model import RAW_COLUMNS, RAW_SCHEMA, REFINED_COLUMNS, REFINED_SCHEMA

RAW_VIEW = "raw_portfolio"

# Written in DuckDB's dialect. `part` has three decimals: summing it as DECIMAL is exact in every engine.
_REFINE_TEMPLATE = """
SELECT
    segment AS Setor,
    DataCarteira AS Data,
    CAST(SUM(CAST(part AS DECIMAL(12, 3))) AS DOUBLE) AS soma_part,
    CAST(COUNT(cod) AS BIGINT) AS total_codigo,
    CAST(SUM(theoricalQty) AS BIGINT) AS soma_qtd_teorica,
    CAST('{processing_date}' AS DATE) AS data_processamento,
    CAST(DATE_DIFF('day', DataCarteira, CAST('{processing_date}' AS DATE)) AS INT) AS dias_desde_carteira
FROM {source}
GROUP BY segment, DataCarteira
ORDER BY Data, Setor
"""


def refine_sql(processing_date: dt.date, dialect: str = "duckdb", source: str = RAW_VIEW) -> str:
    """The refine statement for ``dialect`` (``duckdb`` or ``spark``), reading the raw rows from ``source``."""
    if not isinstance(processing_date, dt.date):
        raise TypeError("processing_date must be a date")
    sql = _REFINE_TEMPLATE.format(processing_date=processing_date.isoformat(), source=source)
    return sqlglot.transpile(sql, read="duckdb", write=dialect, pretty=True)[0]


def refine_portfolio(raw: pd.DataFrame, processing_date: dt.date) -> pd.DataFrame:
    """Raw rows (RAW_COLUMNS, any number of days) -> one row per (Setor, Data), typed as REFINED_SCHEMA.

    ``processing_date`` is recorded in ``data_processamento`` and ``dias_desde_carteira`` counts from it, so a re-run
    with the same inputs gives the same rows (unlike a bare CURRENT_DATE that changes on every read).
    """
    missing = [name for name in RAW_COLUMNS if name not in raw.columns]
    if missing:
        raise ValueError(f"raw rows lack columns {missing}")
    table = pa.Table.from_pandas(raw[RAW_COLUMNS], schema=RAW_SCHEMA, preserve_index=False)
    with duckdb.connect() as connection:
        connection.register(RAW_VIEW, table)
        result = connection.sql(refine_sql(processing_date)).to_arrow_table()
    refined = result.cast(REFINED_SCHEMA).to_pandas(date_as_object=True)
    return refined[REFINED_COLUMNS]
