"""Where each layer's objects go in the lake, and how Parquet is written: one place for every path rule.

The portfolio's raw objects live under ``raw/date=YYYY-MM-DD/``; the other pipelines' raw layers have their own folder
under ``raw/`` (``OTHER_RAW_PREFIXES``: the index history, every index's history, membership and portfolios).
The refined rows are Iceberg tables (storage/tables.py); the Glue
Spark job stages them in Hive-style folders (``Data=2025-04-07/``), whose values Spark escapes the Hive way (``/`` ->
``%2F``, ``%`` -> ``%25``, ...; spaces and accents stay): ``hive_unescape`` reads them back, ``hive_escape`` is
that rule.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq

from b3_dagster.errors import NotARawPartition
from b3_dagster.model import BAR_FILE_NAME, RAW_FILE_NAME

RAW_PREFIX = "raw/"
ARCHIVE_PREFIX = "archive/"
QUARANTINE_PREFIX = "quarantine/"

# The characters Hive's FileUtils.escapePathName / Spark's ExternalCatalogUtils escape.
_HIVE_ESCAPED = set('"#%\'*/:=?\\\x7f{[]^') | {chr(code) for code in range(0x20)}
_RAW_KEY = re.compile(r"^raw/date=(?P<date>[^/]+)/(?P<name>[^/]+)$")


def hive_escape(value: str) -> str:
    return "".join(f"%{ord(char):02X}" if char in _HIVE_ESCAPED else char for char in value)


def hive_unescape(value: str) -> str:
    return unquote(value)


def raw_prefix(day: dt.date) -> str:
    return f"{RAW_PREFIX}date={day.isoformat()}/"


def raw_key(day: dt.date) -> str:
    return raw_prefix(day) + RAW_FILE_NAME


def parse_raw_key(key: str) -> dt.date:
    """The partition date of a raw object key, or ``NotARawPartition`` with the reason."""
    if not key.startswith(RAW_PREFIX):
        raise NotARawPartition(f"{key!r} is outside {RAW_PREFIX!r}")
    match = _RAW_KEY.match(key)
    if not match:
        raise NotARawPartition(f"{key!r} is not raw/date=YYYY-MM-DD/<file>.parquet")
    if not match["name"].endswith(".parquet"):
        raise NotARawPartition(f"{key!r} is not a .parquet file")
    try:
        day = dt.date.fromisoformat(match["date"])
    except ValueError as error:
        raise NotARawPartition(f"{key!r}: {match['date']!r} is not a YYYY-MM-DD date") from error
    if match["date"] != day.isoformat():
        raise NotARawPartition(f"{key!r}: {match['date']!r} is not a YYYY-MM-DD date")
    return day


# ---- the IBOVESPA index history (storage/bar_store.py): one Yahoo bar per session ---------------------------------
RAW_INDEX_PREFIX = "raw/ibov_index/"
_RAW_INDEX_KEY = re.compile(r"^raw/ibov_index/date=(\d{4}-\d{2}-\d{2})/[^/]+\.parquet$")


def raw_index_prefix(day: dt.date) -> str:
    return f"{RAW_INDEX_PREFIX}date={day.isoformat()}/"


def raw_index_key(day: dt.date) -> str:
    return raw_index_prefix(day) + BAR_FILE_NAME


def parse_raw_index_key(key: str) -> dt.date | None:
    """The session of a raw index bar's key; None for any other key."""
    match = _RAW_INDEX_KEY.match(key)
    return dt.date.fromisoformat(match[1]) if match else None


# ---- every B3 index (storage/b3_indices_store.py): history, membership, portfolios, as B3 served them -------------------
HISTORY_PREFIX = "raw/index_history/"
MEMBERSHIP_PREFIX = "raw/index_membership/"
PORTFOLIO_PREFIX = "raw/index_portfolio/"
DAILY_CSV_NAME = "evolucao_diaria.csv"
MEMBERSHIP_NAME = "GetStockIndex.json"
API_PORTFOLIO_NAME = "GetPortfolioDay.parquet"
GRID_KEY = re.compile(r"^raw/index_history/indice=([A-Z0-9]+)/ano=(\d{4})/grid_(pt-br|en-us)\.json$")
CSV_KEY = re.compile(r"^raw/index_history/indice=([A-Z0-9]+)/ano=(\d{4})/evolucao_diaria\.csv$")
MONTHLY_KEY = re.compile(r"^raw/index_history/indice=([A-Z0-9]+)/mensal/(\d{4}-\d{2}-\d{2})_(\d{4}-\d{2}-\d{2})\.csv$")
MEMBERSHIP_KEY = re.compile(r"^raw/index_membership/date=(\d{4}-\d{2}-\d{2})/GetStockIndex\.json$")
PORTFOLIO_KEY = re.compile(r"^raw/index_portfolio/indice=([A-Z0-9]+)/date=(\d{4}-\d{2}-\d{2})/([^/]+\.csv|"
                           r"GetPortfolioDay\.parquet)$")


def grid_key(index: str, year: int, language: str) -> str:
    return f"{HISTORY_PREFIX}indice={index}/ano={int(year)}/grid_{language}.json"


def daily_csv_key(index: str, year: int) -> str:
    return f"{HISTORY_PREFIX}indice={index}/ano={int(year)}/{DAILY_CSV_NAME}"


def monthly_csv_key(index: str, start: dt.date, end: dt.date) -> str:
    return f"{HISTORY_PREFIX}indice={index}/mensal/{start.isoformat()}_{end.isoformat()}.csv"


def membership_key(day: dt.date) -> str:
    return f"{MEMBERSHIP_PREFIX}date={day.isoformat()}/{MEMBERSHIP_NAME}"


def portfolio_day_prefix(index: str, day: dt.date) -> str:
    return f"{PORTFOLIO_PREFIX}indice={index}/date={day.isoformat()}/"


def portfolio_key(index: str, day: dt.date, name: str) -> str:
    return portfolio_day_prefix(index, day) + name


# The raw layers of the other pipelines: their own assets read them, the portfolio's raw sensor passes over them.
OTHER_RAW_PREFIXES = (RAW_INDEX_PREFIX, HISTORY_PREFIX, MEMBERSHIP_PREFIX, PORTFOLIO_PREFIX)


def archive_key(original_key: str, stamp: dt.datetime, prefix: str = ARCHIVE_PREFIX) -> str:
    """Where a replaced object is kept (raw is the system of record: nothing is deleted)."""
    folder, _, name = original_key.rpartition("/")
    return f"{prefix}{folder}/{stamp:%Y%m%dT%H%M%S%fZ}-{name}"


def quarantine_key(original_key: str, stamp: dt.datetime) -> str:
    """Where a snapshot that fails the data-quality rules is kept instead of raw/ (nothing is lost)."""
    return archive_key(original_key, stamp, QUARANTINE_PREFIX)


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="snappy")
    return sink.getvalue()


def read_parquet_bytes(data: bytes) -> pa.Table:
    return pq.read_table(io.BytesIO(data))
