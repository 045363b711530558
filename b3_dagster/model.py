"""The names and types of every layer, declared once.

Raw keeps B3's own field names (the data's vocabulary); refined and the table use the pt-BR names that users
query (``Setor``, ``Data``, ...), exactly as the AWS seed pipeline published them.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa

# ---------------------------------------------------------------------------------------------------------------------
# Raw layer: one row per ticker of the day's IBOV portfolio (B3 GetPortfolioDay, segment 2 = by sector).
# ---------------------------------------------------------------------------------------------------------------------
RAW_DATE_COLUMN = "DataCarteira"
RAW_SCHEMA = pa.schema(
    [
        pa.field("segment", pa.string(), nullable=False),  # sector label, as B3 writes it
        pa.field("cod", pa.string(), nullable=False),  # ticker
        pa.field("asset", pa.string(), nullable=False),  # company short name
        pa.field("type", pa.string(), nullable=False),  # share class + event marker + listing level
        pa.field("part", pa.float64(), nullable=False),  # weight in the index, percent
        pa.field("partAcum", pa.float64(), nullable=True),  # B3's subtotal of the row's sector, percent
        pa.field("theoricalQty", pa.int64(), nullable=False),  # theoretical quantity
        pa.field(RAW_DATE_COLUMN, pa.date32(), nullable=False),  # the session the portfolio applies to
    ]
)
RAW_COLUMNS = RAW_SCHEMA.names
RAW_FILE_NAME = "ibov_setor.parquet"

# Parquet key-value metadata carried by every raw file (B3's header figures and where the rows came from).
META_REDUCTOR = b"b3.reductor"
META_THEORETICAL_QTY_TOTAL = b"b3.theoretical_qty_total"
META_SOURCE = b"b3.source"
# How each ticker of an imported standard download was placed in a sector, as JSON {ticker: how}. Metadata, not a
# column: the raw columns stay B3's own, old raw files and raw equality (same_portfolio) are unaffected.
META_SECTOR_SOURCE = b"b3.sector_source"

# ---------------------------------------------------------------------------------------------------------------------
# Refined layer / table tb_ibov_refined: one row per sector and session.
# ---------------------------------------------------------------------------------------------------------------------
SECTOR = "Setor"
DATE = "Data"
PART_SUM = "soma_part"
TICKER_COUNT = "total_codigo"
THEORETICAL_QTY_SUM = "soma_qtd_teorica"
PROCESSING_DATE = "data_processamento"
DAYS_SINCE_PORTFOLIO = "dias_desde_carteira"

# The canonical sector dimension (B3's Classificação Setorial, see README "The sector dimension"): the refined rows
# carry it beside `Setor`, and the classification table by its own names.
ECONOMIC_SECTOR = "setor_economico"
SUBSECTOR = "subsetor"

REFINED_SCHEMA = pa.schema(
    [
        pa.field(SECTOR, pa.string(), nullable=False),  # stable label "<setor_economico> / <subsetor>"
        # nullable only because a table written before the sector dimension gains them empty (schema evolution);
        # every refined row has both
        pa.field(ECONOMIC_SECTOR, pa.string(), nullable=True),
        pa.field(SUBSECTOR, pa.string(), nullable=True),
        pa.field(DATE, pa.date32(), nullable=False),
        pa.field(PART_SUM, pa.float64(), nullable=False),
        pa.field(TICKER_COUNT, pa.int64(), nullable=False),
        pa.field(THEORETICAL_QTY_SUM, pa.int64(), nullable=False),
        pa.field(PROCESSING_DATE, pa.date32(), nullable=False),
        pa.field(DAYS_SINCE_PORTFOLIO, pa.int32(), nullable=False),
    ]
)
REFINED_COLUMNS = REFINED_SCHEMA.names

CATALOG_DATABASE = "default"
PORTFOLIO_TABLE = "tb_ibov_refined"


@dataclass(frozen=True)
class PortfolioSnapshot:
    """The IBOV portfolio of one session, as B3 published it."""

    portfolio_date: dt.date
    rows: pd.DataFrame  # columns RAW_COLUMNS, typed as RAW_SCHEMA
    reductor: float | None = None
    theoretical_qty_total: int | None = None
    source: str = ""
    warnings: tuple[str, ...] = field(default_factory=tuple)
    # How an importer placed each ticker in a sector ({cod: how}); None when B3 published the sectors itself.
    sector_sources: dict[str, str] | None = None

    def to_arrow(self) -> pa.Table:
        table = pa.Table.from_pandas(self.rows[RAW_COLUMNS], schema=RAW_SCHEMA, preserve_index=False)
        metadata = {META_SOURCE: self.source.encode()}
        if self.reductor is not None:
            metadata[META_REDUCTOR] = repr(self.reductor).encode()
        if self.theoretical_qty_total is not None:
            metadata[META_THEORETICAL_QTY_TOTAL] = str(self.theoretical_qty_total).encode()
        if self.sector_sources is not None:
            metadata[META_SECTOR_SOURCE] = json.dumps(self.sector_sources, sort_keys=True).encode()
        return table.replace_schema_metadata(metadata)

    @classmethod
    def from_arrow(cls, table: pa.Table) -> "PortfolioSnapshot":
        """Rebuild a snapshot from a raw Parquet file's table (the inverse of ``to_arrow``)."""
        metadata = table.schema.metadata or {}
        missing = [name for name in RAW_COLUMNS if name not in table.column_names]
        if missing:
            raise ValueError(f"raw table lacks columns {missing}")
        rows = table.select(RAW_COLUMNS).cast(RAW_SCHEMA.remove_metadata()).to_pandas(date_as_object=True)
        dates = set(rows[RAW_DATE_COLUMN])
        if len(dates) != 1:
            raise ValueError(f"a raw partition holds exactly one portfolio date, found {sorted(dates)}")
        reductor = metadata.get(META_REDUCTOR)
        qty = metadata.get(META_THEORETICAL_QTY_TOTAL)
        sector_sources = metadata.get(META_SECTOR_SOURCE)
        return cls(
            portfolio_date=dates.pop(),
            rows=rows,
            reductor=float(reductor) if reductor else None,
            theoretical_qty_total=int(qty) if qty else None,
            source=metadata.get(META_SOURCE, b"").decode(),
            sector_sources=json.loads(sector_sources) if sector_sources else None,
        )

# ---------------------------------------------------------------------------------------------------------------------
# B3's sector classification (Classificação Setorial), one row per issuer (4-letter root) per vintage, and the
# canonical sector dimension derived from it (see b3_dagster/transforms/sector_dimension.py, README "The sector dimension").
# ---------------------------------------------------------------------------------------------------------------------
ISSUER_CODE = "codigo"  # 4-letter issuer root: PETR for PETR3/PETR4
SEGMENT = "segmento"
VALID_FROM = "vigente_desde"  # the vintage's date: B3's own file date (an upper bound for the new layout)
SOURCE_FILE = "source_file"
# True for a vintage that only carries sector and subsector (the derived 2026 workbook): usable as a fallback to place
# a root no complete vintage knows, never as the vintage valid on a day.
FALLBACK_ONLY = "fallback_only"
CLASSIFICATION_TABLE = "classificacao_setorial"
CLASSIFICATION_SCHEMA = pa.schema(
    [
        pa.field(ISSUER_CODE, pa.string(), nullable=False),
        pa.field(ECONOMIC_SECTOR, pa.string(), nullable=False),
        pa.field(SUBSECTOR, pa.string(), nullable=False),
        pa.field(SEGMENT, pa.string(), nullable=True),  # null only in fallback_only vintages
        pa.field(VALID_FROM, pa.date32(), nullable=False),
        pa.field(SOURCE_FILE, pa.string(), nullable=False),
        pa.field(FALLBACK_ONLY, pa.bool_(), nullable=False),
    ]
)
CLASSIFICATION_COLUMNS = CLASSIFICATION_SCHEMA.names

# The sector mapping the refine joins on (DataCarteira, cod): one canonical sector per raw row.
SECTOR_MAPPING_SCHEMA = pa.schema(
    [
        pa.field(RAW_DATE_COLUMN, pa.date32(), nullable=False),
        pa.field("cod", pa.string(), nullable=False),
        pa.field(ECONOMIC_SECTOR, pa.string(), nullable=False),
        pa.field(SUBSECTOR, pa.string(), nullable=False),
        pa.field(SECTOR, pa.string(), nullable=False),  # stable label "<setor_economico> / <subsetor>"
    ]
)
SECTOR_MAPPING_COLUMNS = SECTOR_MAPPING_SCHEMA.names


# ---------------------------------------------------------------------------------------------------------------------
# Every B3 index (issue 14): portfolios of any index, index membership, B3's official index closes, anomaly score.
# ---------------------------------------------------------------------------------------------------------------------
INDEX_CODE = "indice"  # B3's index code (IBOV, IBXX, SMLL, ...), a dimension of every all-indices table
DEFAULT_INDEX = "IBOV"

# A "Carteira do Dia" portfolio of any index (sources/b3_index_csv.py): B3's own field names, plus the index and the
# parts of `type` (share class, corporate-event flag, listing segment) that B3 packs into one padded field.
SHARE_CLASS = "classe"
EVENT_FLAG = "evento"  # ex-event marker B3 puts between class and segment: ED, EJ, EB, ES ... (null when none)
LISTING_SEGMENT = "segmento_listagem"  # NM, N1, N2, MA, ... (null when none)
INDEX_PORTFOLIO_SCHEMA = pa.schema(
    [
        pa.field(INDEX_CODE, pa.string(), nullable=False),
        pa.field("cod", pa.string(), nullable=False),
        pa.field("asset", pa.string(), nullable=False),
        pa.field("type", pa.string(), nullable=True),  # null when the file lost its Tipo column (re-saved IDIV)
        pa.field(SHARE_CLASS, pa.string(), nullable=True),
        pa.field(EVENT_FLAG, pa.string(), nullable=True),
        pa.field(LISTING_SEGMENT, pa.string(), nullable=True),
        pa.field("part", pa.float64(), nullable=False),
        pa.field("theoricalQty", pa.int64(), nullable=False),
        pa.field(RAW_DATE_COLUMN, pa.date32(), nullable=False),
    ]
)
INDEX_PORTFOLIO_COLUMNS = INDEX_PORTFOLIO_SCHEMA.names

# Index membership from B3's GetStockIndex (sources/b3_stock_index.py): one row per (security, index it belongs to).
MEMBERSHIP_DATE = "data_atualizacao"  # header.update: the day B3 last updated the membership list
MEMBERSHIP_SCHEMA = pa.schema(
    [
        pa.field(MEMBERSHIP_DATE, pa.date32(), nullable=False),
        pa.field("cod", pa.string(), nullable=False),  # B3's `code`
        pa.field("company", pa.string(), nullable=False),
        pa.field("spotlight", pa.string(), nullable=False),  # B3's share type, padding inside kept (like `type`)
        pa.field(INDEX_CODE, pa.string(), nullable=False),
    ]
)
MEMBERSHIP_COLUMNS = MEMBERSHIP_SCHEMA.names

# B3's official daily index closes (sources/b3_index_history.py) -> table b3_refined_db.index_closes.
CLOSE_DATE = "data"
OFFICIAL_CLOSE = "fechamento"  # as B3 publishes it: never back-adjusted for re-denominations (IBOV ÷10 on 1997-03-03)
INDEX_CLOSES_TABLE = "index_closes"
INDEX_CLOSES_SCHEMA = pa.schema(
    [
        pa.field(CLOSE_DATE, pa.date32(), nullable=False),
        pa.field(INDEX_CODE, pa.string(), nullable=False),
        pa.field(OFFICIAL_CLOSE, pa.float64(), nullable=False),
    ]
)
INDEX_CLOSES_COLUMNS = INDEX_CLOSES_SCHEMA.names
# B3's monthly figures: the published minimum and maximum close of each month (grid footers), and the month's last
# close (the "Evolução Mensal" download).
YEAR_COLUMN = "ano"
MONTH_COLUMN = "mes"
MONTH_MIN = "minimo"
MONTH_MAX = "maximo"
MONTH_LAST_CLOSE = "fechamento_mes"
MONTHLY_MIN_MAX_COLUMNS = [INDEX_CODE, YEAR_COLUMN, MONTH_COLUMN, MONTH_MIN, MONTH_MAX]
MONTHLY_CLOSE_COLUMNS = [INDEX_CODE, YEAR_COLUMN, MONTH_COLUMN, MONTH_LAST_CLOSE]
# Reconciliation of the official close with Yahoo's ^BVSP close, one row per day present in either source.
YAHOO_CLOSE = "fechamento_yahoo"
CLOSE_DIFFERENCE = "diferenca"  # Yahoo minus B3, in index points, on B3's current scale
WITHIN_TOLERANCE = "dentro_tolerancia"
# which source a close came from: always "yahoo" in ibov_refined (its close is Yahoo's bar, transforms/index_features);
# "b3" (official) or "yahoo" per day in the close of record (b3_index_history.close_of_record, the index chart)
CLOSE_SOURCE = "fonte_fechamento"
# ibov_refined per row: B3's official close of the session (current scale), null where B3 has not published it
OFFICIAL_B3_CLOSE = "fechamento_oficial_b3"

# Anomaly score of the refined index features (transforms/anomaly.py) -> one row per session.
ANOMALY_SCORE = "anomalia_score"  # higher = more anomalous (the negated IsolationForest score_samples)
ANOMALY_FLAG = "anomalia"  # 1 when the forest labels the day an outlier

# ---------------------------------------------------------------------------------------------------------------------
# The IBOVESPA index history (seed 001). Raw keeps Yahoo's own field names (the source's vocabulary), one row per
# session (sources/yahoo_chart.py); the refined table ``b3_refined_db.ibov_refined`` uses seed 001's names
# (transforms/index_features.py computes it).
# ---------------------------------------------------------------------------------------------------------------------
BAR_DATE = "date"
BAR_SCHEMA = pa.schema(
    [
        pa.field(BAR_DATE, pa.date32(), nullable=False),  # the session, in the exchange's time zone
        pa.field("timestamp", pa.int64(), nullable=False),  # Yahoo's stamp, seconds since the epoch (UTC)
        pa.field("open", pa.float64(), nullable=False),
        pa.field("high", pa.float64(), nullable=False),
        pa.field("low", pa.float64(), nullable=False),
        pa.field("close", pa.float64(), nullable=False),
        pa.field("volume", pa.int64(), nullable=False),  # Yahoo's units (not B3's traded value); 0 on some days
        pa.field("adjclose", pa.float64(), nullable=True),  # equals close for an index; absent in some answers
    ]
)
BAR_COLUMNS = BAR_SCHEMA.names
BAR_FILE_NAME = "bvsp_daily.parquet"

DATA = "data"
OPEN = "preco_abertura"
HIGH = "preco_maximo"
LOW = "preco_minimo"
CLOSE = "preco_fechamento"
VOLUME = "volume_negociado"
DAILY_CHANGE = "variacao_diaria"
DAILY_CHANGE_PCT = "variacao_pct"
RANGE = "amplitude"
VOLATILITY_PCT = "volatilidade_pct"
# The window lengths are part of the column names, so they are declared here with them.
SHORT_WINDOW = 5
LONG_WINDOW = 20
MA_SHORT = f"media_movel_{SHORT_WINDOW}d"
MA_LONG = f"media_movel_{LONG_WINDOW}d"
VOL_MEAN = f"vol_mean_{LONG_WINDOW}d"
VOL_STD = f"vol_std_{LONG_WINDOW}d"
VOL_ZSCORE = "vol_zscore"
VOLATILITY_SPIKE = "volatilidade_pico"
YEAR = "year"
MONTH = "month"

INDEX_SCHEMA = pa.schema(
    [
        pa.field(DATA, pa.date32(), nullable=False),
        pa.field(OPEN, pa.float64(), nullable=False),
        pa.field(HIGH, pa.float64(), nullable=False),
        pa.field(LOW, pa.float64(), nullable=False),
        pa.field(CLOSE, pa.float64(), nullable=False),
        pa.field(VOLUME, pa.int64(), nullable=False),
        pa.field(DAILY_CHANGE, pa.float64(), nullable=False),
        pa.field(DAILY_CHANGE_PCT, pa.float64(), nullable=False),
        pa.field(RANGE, pa.float64(), nullable=False),
        pa.field(VOLATILITY_PCT, pa.float64(), nullable=False),
        pa.field(MA_SHORT, pa.float64(), nullable=True),
        pa.field(MA_LONG, pa.float64(), nullable=True),
        pa.field(VOL_MEAN, pa.float64(), nullable=True),
        pa.field(VOL_STD, pa.float64(), nullable=True),
        pa.field(VOL_ZSCORE, pa.float64(), nullable=True),
        pa.field(VOLATILITY_SPIKE, pa.int32(), nullable=False),
        pa.field(YEAR, pa.int32(), nullable=False),
        pa.field(MONTH, pa.int32(), nullable=False),
        # added after seed 001 (nullable: the table gains them by schema evolution); seed 001 names its columns
        pa.field(CLOSE_SOURCE, pa.string(), nullable=True),  # "yahoo": preco_fechamento is Yahoo's bar
        pa.field(OFFICIAL_B3_CLOSE, pa.float64(), nullable=True),  # B3's close of record, where published
    ]
)
INDEX_COLUMNS = INDEX_SCHEMA.names

# The table b3_refined_db.ibov_anomalies (transforms/anomaly.py): one row per scored session, the forest's features
# (seed 001's "features ready for Isolation Forest") beside the score and the flag.
ANOMALY_FEATURES = (RANGE, VOLATILITY_PCT, VOL_ZSCORE, DAILY_CHANGE_PCT)
ANOMALY_COLUMNS = [DATA, *ANOMALY_FEATURES, ANOMALY_SCORE, ANOMALY_FLAG]
ANOMALY_SCHEMA = pa.schema([pa.field(DATA, pa.date32(), nullable=False),
                            *(pa.field(name, pa.float64()) for name in ANOMALY_FEATURES),
                            pa.field(ANOMALY_SCORE, pa.float64(), nullable=False),
                            pa.field(ANOMALY_FLAG, pa.int32(), nullable=False)])
