"""Every B3 index in the lake (issue 14): B3's official year grids and "Evolução Diária" downloads, GetStockIndex
answers, and "Carteira do Dia" portfolios of any index. Plain Python: no Dagster.

Raw is kept as B3 served it (the bytes), one object per (index, year) or per day:

- ``raw/index_history/indice=IBOV/ano=2022/grid_pt-br.json``: B3's ``indexStatisticsProxy`` answer.
- ``raw/index_history/indice=IBOV/ano=1998/evolucao_diaria.csv``: an imported "Evolução Diária" download.
- ``raw/index_history/indice=IBOV/mensal/2014-01-01_2025-12-31.csv``: an imported "Evolução Mensal" download (each
  month's last close), keyed by the range its title states.
- ``raw/index_membership/date=2025-04-07/GetStockIndex.json``: B3's GetStockIndex answer of that update day.
- ``raw/index_portfolio/indice=IBXX/date=2024-11-12/<name>.csv``: a "Carteira do Dia" download as imported, or
  ``GetPortfolioDay.parquet``: the index's portfolio of that session from B3's API (the client's parsed rows).

B3 serves past years of the history again (and the current year grows), so a grid may be replaced by a newer
answer: the old object is archived under ``archive/``, never deleted. The refined tables are rebuilt from raw.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable

import pandas as pd
import pyarrow as pa

from b3_dagster.model import (
    INDEX_CLOSES_COLUMNS,
    INDEX_CODE,
    INDEX_PORTFOLIO_COLUMNS,
    INDEX_PORTFOLIO_SCHEMA,
    MEMBERSHIP_COLUMNS,
    RAW_DATE_COLUMN,
)
from b3_dagster.sources.b3_index_csv import IndexCsv, parse_index_csv
from b3_dagster.model import MONTH_COLUMN, MONTHLY_CLOSE_COLUMNS, YEAR_COLUMN
from b3_dagster.sources.b3_index_history import (
    IndexYear,
    MonthlyEvolution,
    is_monthly_evolution,
    parse_daily_evolution_csv,
    parse_monthly_evolution_csv,
    parse_year_grid,
)
from b3_dagster.sources.b3_stock_index import StockIndexAnswer, parse_stock_index
from b3_dagster.storage.lake import Lake
from b3_dagster.storage.layout import (
    API_PORTFOLIO_NAME,
    CSV_KEY,
    GRID_KEY,
    HISTORY_PREFIX,
    MEMBERSHIP_KEY,
    MEMBERSHIP_PREFIX,
    PORTFOLIO_KEY,
    PORTFOLIO_PREFIX,
    daily_csv_key,
    grid_key,
    membership_key,
    monthly_csv_key,
    MONTHLY_KEY,
    parquet_bytes,
    portfolio_day_prefix,
    portfolio_key,
    read_parquet_bytes,
)
from b3_dagster.storage.raw_writes import RawPartition, write_raw_partitions

@dataclass(frozen=True)
class RawWrite:
    key: str
    uri: str
    status: str  # written, unchanged, replaced (the old object archived), or kept (...): the stored one stays
    archived: str | None = None


def _keep(lake: Lake, key: str, data: bytes, now: dt.datetime | None = None,
          same_data: Callable[[bytes], bool] | None = None) -> RawWrite:
    """Write ``data`` at ``key``; the same bytes again are a no-op; different bytes archive the old object first
    (B3 serves its history again: a newer answer replaces the stored one, by the one raw-write protocol).
    ``same_data(stored)`` tells stored bytes that differ only where it does not count (a Parquet file's metadata)."""
    def difference() -> str | None:
        stored = lake.read_bytes(key)
        return None if stored == data or (same_data is not None and same_data(stored)) else "different bytes"

    partition = RawPartition(key, data, 0, key, stored=lambda: [key] if lake.exists(key) else [], compare=difference)
    outcome = write_raw_partitions(lake, [partition], allow_overwrite=True, now=now)[0]
    return RawWrite(key, outcome.uri, outcome.status, outcome.archived_key)


class B3IndicesStore:
    """The raw layer of every index's history, membership and portfolios on any ``Lake``."""

    def __init__(self, lake: Lake):
        self.lake = lake

    # ---- official closes --------------------------------------------------------------------------------------
    def write_grid(self, index: str, year: int, language: str, body: bytes) -> RawWrite:
        parse_year_grid(body, index=index, year=year, language=language)  # never keep what does not parse
        return _keep(self.lake, grid_key(index, year, language), body)

    def write_daily_csv(self, data: bytes, name: str, index: str | None = None) -> tuple[RawWrite, IndexYear]:
        """Keep an "Evolução Diária" download (parsed first: a bad file is refused naming its line)."""
        year_data = parse_daily_evolution_csv(data, name, index).year_data
        key = daily_csv_key(year_data.index, year_data.year)
        if self.lake.exists(key) and self.lake.read_bytes(key) != data:
            stored = self.read_year(key)
            if len(stored.closes) > len(year_data.closes):  # an earlier download of the year: the stored one holds more
                return RawWrite(key, self.lake.uri(key), f"kept (the stored download has {len(stored.closes)} "
                                                         f"closes through {stored.last_day})"), year_data
        return _keep(self.lake, key, data), year_data

    def write_history_csv(self, data: bytes, name: str, index: str | None = None) -> tuple[RawWrite, str]:
        """Keep either download of B3's index page ("Evolução Diária" or "Evolução Mensal"); the write and one line
        saying what it held."""
        if is_monthly_evolution(data, name):
            written, monthly = self.write_monthly_csv(data, name, index)
            months = monthly.months
            first, last = months.iloc[0], months.iloc[-1]
            return written, (f"{months[INDEX_CODE].iloc[0]} monthly closes, {len(months)} months "
                             f"{first[YEAR_COLUMN]}-{first[MONTH_COLUMN]:02d}..{last[YEAR_COLUMN]}-"
                             f"{last[MONTH_COLUMN]:02d}")
        written, year = self.write_daily_csv(data, name, index)
        return written, f"{year.index} {year.year}, {len(year.closes)} closes through {year.last_day}"

    def write_monthly_csv(self, data: bytes, name: str, index: str | None = None) -> tuple[RawWrite, MonthlyEvolution]:
        """Keep an "Evolução Mensal" download (parsed first). A later download of the same range holds more months
        (or the month in progress further on): an earlier one with fewer months never replaces it."""
        monthly = parse_monthly_evolution_csv(data, name, index)
        if monthly.months.empty:
            raise ValueError(f"{name}: no month rows; nothing was written")
        key = monthly_csv_key(monthly.months[INDEX_CODE].iloc[0], monthly.start, monthly.end)
        if self.lake.exists(key) and self.lake.read_bytes(key) != data:
            stored = self.read_monthly(key)
            if len(stored.months) > len(monthly.months):
                return RawWrite(key, self.lake.uri(key), f"kept (the stored download has {len(stored.months)} "
                                                         "months)"), monthly
        return _keep(self.lake, key, data), monthly

    def read_monthly(self, key: str) -> MonthlyEvolution:
        match = MONTHLY_KEY.match(key)
        if not match:
            raise ValueError(f"{self.lake.uri(key)} is not a raw Evolução Mensal download")
        return parse_monthly_evolution_csv(self.lake.read_bytes(key), self.lake.uri(key), match[1])

    def monthly(self, indices: list[str] | None = None) -> tuple[pd.DataFrame, list[str]]:
        """Every stored month (MONTHLY_CLOSE_COLUMNS; where downloads overlap, the one whose range ends later wins)
        and the downloads read."""
        keys = sorted((m[1], m[3], m[2], info.key) for info in self.lake.list(HISTORY_PREFIX)
                      if (m := MONTHLY_KEY.match(info.key)) and (indices is None or m[1] in indices))
        frames = [self.read_monthly(key).months for *_, key in keys]  # by index, then range end: later ones last
        if not frames:
            return pd.DataFrame(columns=MONTHLY_CLOSE_COLUMNS), []
        rows = pd.concat(frames, ignore_index=True).drop_duplicates([INDEX_CODE, YEAR_COLUMN, MONTH_COLUMN],
                                                                    keep="last")
        return (rows.sort_values([INDEX_CODE, YEAR_COLUMN, MONTH_COLUMN]).reset_index(drop=True),
                [self.lake.uri(key) for *_, key in keys])

    def history_keys(self) -> list[tuple[str, int, str]]:
        """(index, year, key) of every stored grid and CSV."""
        found = []
        for info in self.lake.list(HISTORY_PREFIX):
            match = GRID_KEY.match(info.key) or CSV_KEY.match(info.key)
            if match:
                found.append((match[1], int(match[2]), info.key))
        return sorted(found)

    def read_year(self, key: str) -> IndexYear:
        data = self.lake.read_bytes(key)
        grid = GRID_KEY.match(key)
        if grid:
            return parse_year_grid(data, index=grid[1], year=int(grid[2]), language=grid[3],
                                   source=self.lake.uri(key))
        csv = CSV_KEY.match(key)
        if csv:
            return parse_daily_evolution_csv(data, self.lake.uri(key), csv[1]).year_data
        raise ValueError(f"{self.lake.uri(key)} is not a raw index history object")

    def years(self, indices: list[str] | None = None) -> list[IndexYear]:
        """One ``IndexYear`` per stored (index, year): the source with the most closes (a whole year's grid beats a
        download made mid-year; between equals, B3's grid)."""
        by_year: dict[tuple[str, int], IndexYear] = {}
        for index, year, key in self.history_keys():
            if indices is not None and index not in indices:
                continue
            candidate = self.read_year(key)
            current = by_year.get((index, year))
            if current is None or len(candidate.closes) > len(current.closes):
                by_year[(index, year)] = candidate
        return [by_year[key] for key in sorted(by_year)]

    def closes(self, indices: list[str] | None = None) -> tuple[pd.DataFrame, dict[tuple[str, int], str]]:
        """All stored closes (INDEX_CLOSES_COLUMNS, as B3 published them) and the source of each (index, year)."""
        years = self.years(indices)
        frames = [year.closes for year in years if not year.closes.empty]
        rows = (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=INDEX_CLOSES_COLUMNS))
        return rows.sort_values([INDEX_CODE, "data"]).reset_index(drop=True), {
            (year.index, year.year): year.source for year in years}

    # ---- membership -------------------------------------------------------------------------------------------
    def write_membership(self, body: bytes, source: str = "B3 GetStockIndex") -> tuple[RawWrite, StockIndexAnswer]:
        answer = parse_stock_index(body, source)
        return _keep(self.lake, membership_key(answer.update), body), answer

    def membership_days(self) -> list[dt.date]:
        return sorted(dt.date.fromisoformat(m[1]) for info in self.lake.list(MEMBERSHIP_PREFIX)
                      if (m := MEMBERSHIP_KEY.match(info.key)))

    def read_membership(self, day: dt.date) -> StockIndexAnswer:
        key = membership_key(day)
        return parse_stock_index(self.lake.read_bytes(key), self.lake.uri(key))

    # ---- portfolios of any index ------------------------------------------------------------------------------
    def write_portfolio_csv(self, data: bytes, name: str, *, allow_altered: bool = False) -> tuple[RawWrite, IndexCsv]:
        parsed = parse_index_csv(data, name, allow_altered=allow_altered)
        base = name.replace("\\", "/").rsplit("/", 1)[-1]
        self._one_per_day(parsed.index, parsed.portfolio_date, base, name)
        return _keep(self.lake, portfolio_key(parsed.index, parsed.portfolio_date, base), data), parsed

    def write_api_portfolio(self, index: str, rows: pd.DataFrame, source: str) -> RawWrite:
        """An index's portfolio from GetPortfolioDay (the client's parsed rows), as INDEX_PORTFOLIO_COLUMNS."""
        day = rows[RAW_DATE_COLUMN].iloc[0]
        table = pa.Table.from_pandas(rows[INDEX_PORTFOLIO_COLUMNS], schema=INDEX_PORTFOLIO_SCHEMA,
                                     preserve_index=False)
        self._one_per_day(index, day, API_PORTFOLIO_NAME, source)
        # the source (the URL the client asked) is metadata: the same rows taken through another URL (a replay's
        # port, a proxy) are the same portfolio, kept as it is rather than archived and written again
        return _keep(self.lake, portfolio_key(index, day, API_PORTFOLIO_NAME),
                     parquet_bytes(table.replace_schema_metadata({b"b3.source": source.encode()})),
                     same_data=lambda stored: read_parquet_bytes(stored).cast(INDEX_PORTFOLIO_SCHEMA).equals(table))

    def _one_per_day(self, index: str, day: dt.date, base: str, name: str) -> None:
        for info in self.lake.list(portfolio_day_prefix(index, day)):
            if info.key.rsplit("/", 1)[-1] != base:  # one portfolio per (index, day): a second source is a conflict
                raise ValueError(f"{name}: {index} {day} is already stored as {self.lake.uri(info.key)}; "
                                 "nothing was written")

    def portfolio_keys(self) -> list[tuple[str, dt.date, str]]:
        return sorted((m[1], dt.date.fromisoformat(m[2]), info.key) for info in self.lake.list(PORTFOLIO_PREFIX)
                      if (m := PORTFOLIO_KEY.match(info.key)))

    def portfolios(self, indices: list[str] | None = None) -> tuple[pd.DataFrame, list[IndexCsv]]:
        """Every stored portfolio (INDEX_PORTFOLIO_COLUMNS). Altered copies were accepted on import on purpose;
        their alterations are returned with them."""
        keys = [key for index, _, key in self.portfolio_keys() if indices is None or index in indices]
        parsed = [parse_index_csv(self.lake.read_bytes(key), key.rsplit("/", 1)[-1], allow_altered=True)
                  for key in keys if key.endswith(".csv")]
        api = [read_parquet_bytes(self.lake.read_bytes(key)).cast(INDEX_PORTFOLIO_SCHEMA).to_pandas(
            date_as_object=True) for key in keys if key.endswith(API_PORTFOLIO_NAME)]
        frames = [p.rows for p in parsed] + api
        rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=INDEX_PORTFOLIO_COLUMNS)
        return rows, parsed


__all__ = ["B3IndicesStore", "RawWrite", "MEMBERSHIP_COLUMNS", "grid_key", "daily_csv_key", "membership_key"]
