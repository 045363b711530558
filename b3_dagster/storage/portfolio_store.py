"""Raw IBOV portfolio partitions in the lake (the refined rows live in the Iceberg table, see ``tables``).

Raw is the system of record: B3 serves only the current portfolio, so a past day can never be fetched again. An
existing raw partition is therefore never silently replaced: identical data is a no-op, different data is refused
unless the caller explicitly allows it, and then the old file is archived, not deleted.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa

from b3_dagster.errors import (
    NotARawPartition,
    RawPartitionConflict,
    RawPartitionMissing,
    UnreadableObject,
)
from b3_dagster.model import (
    RAW_COLUMNS,
    RAW_DATE_COLUMN,
    SECTOR,
    THEORETICAL_QTY_SUM,
    TICKER_COUNT,
    PortfolioSnapshot,
)
from b3_dagster.storage.lake import Lake
from b3_dagster.storage.layout import (
    RAW_PREFIX,
    parquet_bytes,
    parse_raw_key,
    quarantine_key,
    raw_key,
    raw_prefix,
    read_parquet_bytes,
)
from b3_dagster.storage.raw_writes import Conflicts, RawPartition, RawWriteOutcome, write_raw_partitions
from b3_dagster.storage.staging import Expected


def _comparable(snapshot: PortfolioSnapshot) -> pd.DataFrame:
    return snapshot.rows[RAW_COLUMNS].sort_values(["cod", "segment"]).reset_index(drop=True)


def describe_difference(old: PortfolioSnapshot, new: PortfolioSnapshot) -> str:
    old_codes, new_codes = set(old.rows["cod"]), set(new.rows["cod"])
    parts = [f"stored {len(old.rows)} rows, new {len(new.rows)} rows"]
    if new_codes - old_codes:
        parts.append(f"new tickers {sorted(new_codes - old_codes)[:5]}")
    if old_codes - new_codes:
        parts.append(f"missing tickers {sorted(old_codes - new_codes)[:5]}")
    if old.reductor != new.reductor:
        parts.append(f"reductor {old.reductor} -> {new.reductor}")
    if len(parts) == 1:
        parts.append("same tickers, different values")
    return "; ".join(parts)


def same_portfolio(old: PortfolioSnapshot, new: PortfolioSnapshot) -> bool:
    if old.portfolio_date != new.portfolio_date or len(old.rows) != len(new.rows):
        return False
    if old.theoretical_qty_total not in (None, new.theoretical_qty_total) or old.reductor not in (None, new.reductor):
        return False
    return _comparable(old).equals(_comparable(new))


REFINE_DATASET = "ibov_sector_refined"  # staging/<this>/<run id>/ holds a run's refined rows until the commit


class PortfolioStore:
    """The portfolio's raw layer on any ``Lake``."""

    def __init__(self, lake: Lake):
        self.lake = lake

    # ---- raw -------------------------------------------------------------------------------------------------
    def raw_days(self) -> list[dt.date]:
        days = set()
        for info in self.lake.list(RAW_PREFIX):
            try:
                days.add(parse_raw_key(info.key))
            except NotARawPartition:
                continue
        return sorted(days)

    def raw_keys(self, day: dt.date) -> list[str]:
        return [info.key for info in self.lake.list(raw_prefix(day)) if info.key.endswith(".parquet")]

    def read_raw(self, day: dt.date) -> PortfolioSnapshot:
        keys = self.raw_keys(day)
        if not keys:
            raise RawPartitionMissing(f"no raw portfolio for {day} at {self.lake.uri(raw_prefix(day))}")
        tables = []
        for key in keys:
            try:
                table = read_parquet_bytes(self.lake.read_bytes(key))
            except (pa.ArrowException, OSError) as error:
                raise UnreadableObject(f"{self.lake.uri(key)} is not a readable Parquet file (half-written or "
                                       f"corrupt?): {error}") from error
            missing = [name for name in RAW_COLUMNS if name not in table.column_names]
            if missing:
                raise UnreadableObject(f"{self.lake.uri(key)} lacks raw columns {missing} (schema change?); "
                                       f"it has {table.column_names}")
            tables.append(table)
        metadata = tables[0].schema.metadata
        combined = pa.concat_tables([t.select(RAW_COLUMNS).cast(tables[0].select(RAW_COLUMNS).schema)
                                     for t in tables]).replace_schema_metadata(metadata)
        try:
            snapshot = PortfolioSnapshot.from_arrow(combined)
        except (ValueError, pa.ArrowException) as error:
            raise UnreadableObject(f"raw partition {day} ({', '.join(keys)}): {error}") from error
        if snapshot.portfolio_date != day:
            raise UnreadableObject(f"raw partition {day} holds the portfolio of {snapshot.portfolio_date} "
                                   f"({', '.join(keys)})")
        return snapshot

    def write_raw(self, snapshot: PortfolioSnapshot, *, allow_overwrite: bool = False,
                  now: dt.datetime | None = None) -> RawWriteOutcome:
        day = snapshot.portfolio_date

        def compare() -> str | None:
            try:
                stored = self.read_raw(day)
            except UnreadableObject as error:
                return f"the stored partition is unreadable: {error}"
            return None if same_portfolio(stored, snapshot) else describe_difference(stored, snapshot)

        def refuse(conflicts: Conflicts) -> RawPartitionConflict:
            return RawPartitionConflict(
                f"raw partition {day} already exists at {self.lake.uri(raw_prefix(day))} with different data "
                f"({conflicts[0][1]}). B3 cannot serve a past portfolio again, so it is kept. To replace it on "
                "purpose, materialise with config allow_overwrite: true (the old file is archived under archive/).")

        partition = RawPartition(raw_key(day), parquet_bytes(snapshot.to_arrow()), len(snapshot.rows), str(day),
                                 stored=lambda: self.raw_keys(day), compare=compare)
        return write_raw_partitions(self.lake, [partition], allow_overwrite=allow_overwrite, refuse=refuse,
                                    now=now)[0]

    def quarantine_raw(self, snapshot: PortfolioSnapshot, now: dt.datetime | None = None) -> str:
        """Keep a snapshot that breaks the data-quality rules out of raw/ (so nothing refines it), but on disk."""
        key = quarantine_key(raw_key(snapshot.portfolio_date), now or dt.datetime.now(dt.timezone.utc))
        self.lake.write_bytes(key, parquet_bytes(snapshot.to_arrow()))
        return key


def expected_refined(raw_rows: pd.DataFrame, mapping: pd.DataFrame | None = None) -> dict[str, Expected]:
    """What each day's refined rows must hold, from its raw rows: one row per sector (per canonical ``Setor`` of
    ``mapping``, the refine's sector mapping; per source label without one), every ticker counted, every theoretical
    quantity summed. The table commit refuses a day whose staged rows disagree (a partial refine, or a ticker the
    mapping could not place)."""
    sectors = (mapping.groupby(RAW_DATE_COLUMN)[SECTOR].nunique() if mapping is not None
               else raw_rows.groupby(RAW_DATE_COLUMN)["segment"].nunique())
    expected = {}
    for day, rows in raw_rows.groupby(RAW_DATE_COLUMN, sort=True):
        expected[day.isoformat()] = Expected(
            rows=int(sectors.get(day, 0)),
            sums={TICKER_COUNT: float(len(rows)), THEORETICAL_QTY_SUM: float(rows["theoricalQty"].sum())})
    return expected
