"""The IBOVESPA index history in the lake, and its catalogued table ``ibov_refined``.

- raw: ``raw/ibov_index/date=YYYY-MM-DD/bvsp_daily.parquet``, one Yahoo bar per B3 session (Yahoo's field names).
  A stored day is never silently replaced: the same bar again is a no-op; a different bar (Yahoo revises recent bars
  and back-fills volumes) is refused unless the caller allows it, and then the old file is archived. A batch of days
  is checked completely before the first write, so a refused day leaves every day of the batch untouched.
- refined: staged per run (``staging/ibov_index_refined/<run id>/``), then committed month by month to the Iceberg
  table ``b3_refined_db.ibov_refined`` (seed 001's database and table name; see ``tables.INDEX_TABLE_DEF``), so
  seed 001's query runs unchanged.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa

from b3_dagster.errors import RawPartitionConflict, RawPartitionMissing, UnreadableObject
from b3_dagster.model import BAR_COLUMNS, BAR_DATE, BAR_SCHEMA
from b3_dagster.storage.lake import Lake
from b3_dagster.storage.layout import (
    RAW_INDEX_PREFIX,
    parquet_bytes,
    parse_raw_index_key,
    raw_index_key,
    read_parquet_bytes,
)
from b3_dagster.storage.raw_writes import Conflicts, RawPartition, RawWriteOutcome, write_raw_partitions
from b3_dagster.storage.staging import Expected
from b3_dagster.storage.tables import INDEX_TABLE_DEF

REFINE_INDEX_DATASET = "ibov_index_refined"  # staging/<this>/<run id>/ until the table commit
INDEX_DATABASE = INDEX_TABLE_DEF.database  # seed 001's Glue database
INDEX_TABLE = INDEX_TABLE_DEF.name
META_SOURCE = b"yahoo.source"

__all__ = ["BarStore", "RawPartitionConflict", "RawPartitionMissing", "UnreadableObject", "expected_months",
           "raw_index_key"]


def _typed(bars: pd.DataFrame) -> pd.DataFrame:
    table = pa.Table.from_pandas(bars[BAR_COLUMNS], schema=BAR_SCHEMA, preserve_index=False)
    return table.to_pandas(date_as_object=True).sort_values(BAR_DATE).reset_index(drop=True)


def _bar_text(bar: pd.Series) -> str:
    return ", ".join(f"{name} {bar[name]}" for name in ("open", "high", "low", "close", "volume"))


class BarStore:
    """The index history's raw layer on any ``Lake``."""

    def __init__(self, lake: Lake):
        self.lake = lake

    # ---- raw -------------------------------------------------------------------------------------------------
    def raw_days(self) -> list[dt.date]:
        return sorted({day for info in self.lake.list(RAW_INDEX_PREFIX)
                       if (day := parse_raw_index_key(info.key)) is not None})

    def _read_raw_day(self, day: dt.date) -> pd.DataFrame:
        key = raw_index_key(day)
        if not self.lake.exists(key):
            raise RawPartitionMissing(f"no raw index bar for {day} at {self.lake.uri(key)}")
        try:
            table = read_parquet_bytes(self.lake.read_bytes(key))
            bars = table.select(BAR_COLUMNS).cast(BAR_SCHEMA).to_pandas(date_as_object=True)
        except (pa.ArrowException, OSError, KeyError, ValueError) as error:
            raise UnreadableObject(f"{self.lake.uri(key)} is not a readable raw index file: {error}") from error
        if list(bars[BAR_DATE]) != [day]:
            raise UnreadableObject(f"{self.lake.uri(key)} holds {list(bars[BAR_DATE])}, expected one bar of {day}")
        return bars

    def read_raw(self, days: list[dt.date]) -> pd.DataFrame:
        frames = [self._read_raw_day(day) for day in sorted(days)]
        if not frames:
            return BAR_SCHEMA.empty_table().to_pandas(date_as_object=True)
        return pd.concat(frames, ignore_index=True)

    def write_raw(self, bars: pd.DataFrame, *, source: str = "", allow_overwrite: bool = False,
                  now: dt.datetime | None = None) -> list[RawWriteOutcome]:
        """Write one raw partition per bar. Every day is compared with what is stored before anything is written:
        one conflicting day refuses the whole batch."""

        def refuse(conflicts: Conflicts) -> RawPartitionConflict:
            first, difference = conflicts[0]
            days = [partition.label for partition, _ in conflicts[:5]]
            return RawPartitionConflict(
                f"raw index partition(s) {days} already exist with different data ({first.label}: {difference}); "
                "nothing was written. Yahoo revises recent bars and back-fills volumes; to take the new values on "
                "purpose, materialise with config allow_overwrite: true (the old files are archived under archive/). "
                f"[{self.lake.uri(first.key.rpartition('/')[0] + '/')}]")

        # one Arrow table for the batch, one file per day from its slices (a frame and a table per day took ~3 ms each:
        # 1 s of the demo's 298 days); the files' bytes are the same
        table = pa.Table.from_pandas(bars[BAR_COLUMNS], schema=BAR_SCHEMA, preserve_index=False)
        table = table.replace_schema_metadata({META_SOURCE: source.encode()})
        partitions = [self._partition(bar, table.slice(position, 1))
                      for position, (_, bar) in enumerate(bars.iterrows())]
        return write_raw_partitions(self.lake, partitions, allow_overwrite=allow_overwrite, refuse=refuse, now=now)

    def _partition(self, bar: pd.Series, row: pa.Table) -> RawPartition:
        day = bar[BAR_DATE]
        key = raw_index_key(day)

        def compare() -> str | None:
            try:
                stored = self._read_raw_day(day)
            except UnreadableObject as error:
                return f"the stored file is unreadable: {error}"
            same = _typed(stored).equals(_typed(pd.DataFrame([bar])))
            return None if same else f"stored {_bar_text(stored.iloc[0])}; new {_bar_text(bar)}"

        return RawPartition(key, parquet_bytes(row), 1, day.isoformat(), compare=compare,
                            stored=lambda: [key] if self.lake.exists(key) else [])


def expected_months(raw_days: list[dt.date], months: list[tuple[int, int]]) -> dict[str, Expected]:
    """What each month's staged rows must hold: one row per raw session of the month (the commit refuses less)."""
    return {f"{year}/{month}": Expected(rows=sum(1 for day in raw_days if (day.year, day.month) == (year, month)),
                                        sums={}) for year, month in months}


# Seed 001's analytic query (b3-dataflow-aws-batch README, "Consulta SQL no Amazon Athena"), verbatim.
SEED_001_QUERY = """SELECT
    data,
    preco_abertura,
    preco_fechamento,
    (preco_fechamento - preco_abertura) AS variacao_diaria,
    ROUND(((preco_fechamento - preco_abertura) / preco_abertura) * 100, 2) AS variacao_pct,
    volume_negociado
FROM "b3_refined_db"."ibov_refined"
WHERE year = 2025 AND month = 10
ORDER BY data DESC
LIMIT 10;"""
_SEED_001_FILTER = "WHERE year = 2025 AND month = 10"


def seed_001_query(year: int, month: int) -> str:
    """Seed 001's query with its month filter set to ``year``/``month`` (nothing else changed)."""
    return SEED_001_QUERY.replace(_SEED_001_FILTER, f"WHERE year = {int(year)} AND month = {int(month)}")
