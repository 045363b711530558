"""The index pipeline: Yahoo bars and B3's official closes -> features -> anomaly score -> charts."""

import datetime as dt
from typing import Iterator, Optional

import dagster as dg
import pandas as pd
import pyarrow as pa
from pydantic import Field

from b3_dagster.calendar import sessions
from b3_dagster.defs.index.checks import (
    ANOMALY_ASSET,
    ANOMALY_CHART_ASSET,
    CLOSES_ASSET,
    CLOSES_CHECKS,
    HISTORY_RAW_ASSET,
    IBOV_REFINED_KEY,
    INDEX_TABLE_ASSET,
    RAW_INDEX_ASSET,
    REFINED_INDEX_ASSET,
)
from b3_dagster.defs.resources import B3IndicesResource, CatalogResource, LakeResource, YahooChartResource
from b3_dagster.defs.shared.checks import (
    asset_with_checks,
    check_results,
    check_selected,
    combine_outcomes,
    result,
    skipped_metadata,
    specs,
    warn_result,
)
from b3_dagster.defs.shared.declarations import raw_asset
from b3_dagster.defs.shared.failures import fails_clearly
from b3_dagster.defs.shared.metadata import chart, chart_asset, days_in_run, path, preview, sql_block
from b3_dagster.defs.shared.partitions import GROUP as INDICES_GROUP
from b3_dagster.defs.shared.partitions import history_partitions, ibov_month_partitions, trading_day_partitions
from b3_dagster.defs.shared.tables import (
    commit_rows,
    commit_run,
    indices_store,
    partition_materialisations,
    refine_and_commit_asset,
    selected,
    snapshot_metadata,
    table_asset,
)
from b3_dagster.errors import Missing, RawPartitionMissing, TableHasNoRows
from b3_dagster.model import (
    BAR_DATE,
    CATALOG_DATABASE,
    CLOSE,
    CLOSE_DATE,
    CLOSE_SOURCE,
    DATA,
    DATE,
    DEFAULT_INDEX,
    INDEX_CODE,
    INDEX_SCHEMA,
    MA_LONG,
    MA_SHORT,
    MONTH,
    OFFICIAL_CLOSE,
    PART_SUM,
    PORTFOLIO_TABLE,
    SECTOR,
    VOL_ZSCORE,
    VOLATILITY_PCT,
    VOLATILITY_SPIKE,
    YEAR,
)
from b3_dagster.rules.indices import (
    Skipped,
    check_closes_on_sessions,
    check_monthly_matches_daily,
    check_published_min_max,
    reconcile_with_yahoo,
)
from b3_dagster.rules.quality import INDEX_CHECKS, CheckOutcome, check_reproducible
from b3_dagster.sources.b3_index_history import IndexYear, close_of_record, on_current_scale
from b3_dagster.storage import staging
from b3_dagster.storage.bar_store import (
    INDEX_DATABASE,
    INDEX_TABLE,
    REFINE_INDEX_DATASET,
    BarStore,
    expected_months,
    seed_001_query,
)
from b3_dagster.storage.b3_indices_store import B3IndicesStore
from b3_dagster.storage.layout import DAILY_CSV_NAME, HISTORY_PREFIX
from b3_dagster.storage.tables import (
    ANOMALY_TABLE_DEF,
    INDEX_CLOSES_TABLE_DEF,
    INDEX_TABLE_DEF,
    PORTFOLIO_TABLE_DEF,
    AsOf,
    connect,
    run_query,
)
from b3_dagster.transforms.anomaly import AnomalySettings, score_anomalies
from b3_dagster.transforms.charts import close_chart_figure, png_bytes, render_anomaly_chart, render_sector_chart
from b3_dagster.transforms.index_features import LOOKBACK_SESSIONS, refine_index, with_official_closes

GROUP = "ibov_index"
INDEX_CHART_ASSET = "ibov_index_chart"
SECTOR_CHART_ASSET = "ibov_sector_chart"
PORTFOLIO_TABLE_KEY = dg.AssetKey(PORTFOLIO_TABLE)  # produced by defs/portfolio/assets.py


class IndexRawConfig(dg.Config):
    allow_overwrite: bool = Field(
        default=False,
        description="Replace stored days whose bar Yahoo has since revised (old files are archived under archive/).",
    )


class ChartConfig(dg.Config):
    sessions: int = Field(default=250, ge=20, le=5000, description="How many of the latest sessions to draw.")


def _months_in_run(context: dg.AssetExecutionContext) -> list[tuple[int, int]]:
    return sorted({(int(key[:4]), int(key[5:7])) for key in days_in_run(context)})


def _month_end(year: int, month: int) -> dt.date:
    return (dt.date(year + month // 12, month % 12 + 1, 1)) - dt.timedelta(days=1)


# ---------------------------------------------------------------------------------------------------------------------
@dg.multi_asset(
    name=RAW_INDEX_ASSET,
    # skippable: the step records one materialisation per session it wrote (below) instead of an output, which
    # Dagster would record for every session of the run's range with the whole run's metadata (298 days each said
    # "298 rows" and showed the last day's folder)
    specs=[dg.AssetSpec(
        RAW_INDEX_ASSET,
        group_name=GROUP,
        kinds={"parquet"},
        skippable=True,
        description="Daily open/high/low/close/volume of ^BVSP from Yahoo's chart API, one Parquet file per B3 "
                    "session under raw/ibov_index/date=YYYY-MM-DD/. A backfill of a range is one request. Provisional "
                    "(unfinished) bars are never written; stored days are never silently replaced.",
    )],
    partitions_def=trading_day_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
)
@fails_clearly
def ibov_index_raw(context: dg.AssetExecutionContext, config: IndexRawConfig, yahoo: YahooChartResource,
                   lake: LakeResource) -> Iterator[dg.AssetMaterialization]:
    days = sorted(dt.date.fromisoformat(key) for key in days_in_run(context))
    history = yahoo.client().fetch_daily(days[0], days[-1])
    bars = history.select(days)  # raises before any write when a day is missing or provisional
    store = BarStore(lake.lake())
    outcomes = store.write_raw(bars, source=history.url, allow_overwrite=config.allow_overwrite)
    for note in history.notes:
        context.log.info(note)
    run_wide = {
        "run_days": f"{days[0]}..{days[-1]} ({len(days)} sessions, one request)",
        "request": dg.MetadataValue.url(history.url) if history.url.startswith("http") else history.url,
        "exchange_timezone": history.exchange_timezone,
        "left_out_provisional": ", ".join(str(day) for day in history.provisional["date"]) or "none",
    }
    yield from partition_materialisations(RAW_INDEX_ASSET, run_wide, {
        bars[BAR_DATE].iloc[position].isoformat(): {  # write_raw answers one outcome per bar, in order
            # the words of the other raw assets: status and location as in index_history_raw, archived_previous as
            # in ibov_raw_snapshot
            "status": outcome.status,
            "location": path(outcome.uri),
            "archived_previous": outcome.archived_key or "",
            "dagster/row_count": outcome.rows,
            "preview": preview(bars.iloc[[position]]),
        } for position, outcome in enumerate(outcomes)})


def _lookback_days(first_day: dt.date, raw_days: list[dt.date]) -> list[dt.date]:
    """The ``LOOKBACK_SESSIONS`` sessions before ``first_day`` that the history reaches (none before its start).
    Raises when the history reaches further back but some of those sessions are not in raw."""
    if not raw_days or raw_days[0] >= first_day:
        return []
    window = sessions(first_day - dt.timedelta(days=LOOKBACK_SESSIONS * 2 + 20), first_day - dt.timedelta(days=1))
    needed = [day for day in window[-LOOKBACK_SESSIONS:] if day >= raw_days[0]]
    present = set(raw_days)
    missing = [day for day in needed if day not in present]
    if missing:
        raise RawPartitionMissing(
            f"the 20-session windows of {first_day} need the raw index bars of {[d.isoformat() for d in missing]}, "
            f"which are not in the lake: materialise {RAW_INDEX_ASSET} for those days first")
    return needed


def seed_query_answers(answer: pd.DataFrame, refined: pd.DataFrame) -> CheckOutcome:
    """Seed 001's query (latest 10 days of the month, newest first) answers with the refined rows' values."""
    expected = refined.sort_values(DATA, ascending=False).head(10)
    got_days = [pd.Timestamp(day).date() for day in answer[DATA]] if DATA in answer else []
    same_days = got_days == list(expected[DATA])
    same_close = same_days and answer[CLOSE].astype(float).tolist() == expected[CLOSE].astype(float).tolist()
    passed = bool(len(expected)) and same_days and same_close
    return CheckOutcome(passed, f"seed 001's query answers {len(answer)} rows, newest {got_days[:1]}" if passed
                        else f"seed 001's query answered days {got_days[:10]}, expected {list(expected[DATA])[:10]}",
                        {"rows": len(answer)})


# ---- the close of record (README, "B3's official closes"): B3's where published, Yahoo's on the other days ---------
def official_ibov_closes(tables, first: dt.date, last: dt.date) -> pd.DataFrame:
    """B3's official IBOV closes between ``first`` and ``last`` from b3_refined_db.index_closes (empty before its
    first commit)."""
    if tables.load(INDEX_CLOSES_TABLE_DEF) is None:
        return pd.DataFrame(columns=INDEX_CLOSES_TABLE_DEF.schema.names)
    closes = run_query(connect(tables, table_defs=[INDEX_CLOSES_TABLE_DEF]),
                       f"SELECT * FROM {INDEX_CLOSES_TABLE_DEF.qualified_name} WHERE indice = '{DEFAULT_INDEX}' "
                       f"AND data BETWEEN DATE '{first}' AND DATE '{last}'")
    closes[DATA] = pd.to_datetime(closes[DATA]).dt.date
    return closes


@refine_and_commit_asset(
    refined=dg.AssetSpec(
        REFINED_INDEX_ASSET,
        group_name=GROUP,
        deps=[RAW_INDEX_ASSET],
        kinds={"parquet", "pandas"},
        description="Seed 001's refined index rows (pt-BR names, daily change, amplitude, volatility, 5/20-session "
                    "moving averages, 20-session volatility z-score, volatilidade_pico) per month, staged per run "
                    "(staging/); the same step commits them to ibov_refined. Windows at a month's start use the "
                    "previous month's sessions.",
    ),
    table=dg.AssetSpec(
        INDEX_TABLE_ASSET,
        group_name=GROUP,
        deps=[REFINED_INDEX_ASSET],
        description=f"{INDEX_DATABASE}.{INDEX_TABLE}, the index table (seed 001's name and columns), an Apache "
                    "Iceberg table partitioned by year and month in the same catalog as tb_ibov_refined: the run's "
                    "staged months replace the table's rows of those months in one commit, in the refine's step "
                    "(ibov_index_refined).",
    ),
    check_specs=[*specs(REFINED_INDEX_ASSET, {name: text for name, (_, text) in INDEX_CHECKS.items()}),
                 dg.AssetCheckSpec(name="seed_001_query_answers", asset=INDEX_TABLE_ASSET,
                                   description="Seed 001's analytic query runs unchanged and answers with the "
                                               "refined rows of the month.")],
    partitions_def=ibov_month_partitions,
)
@fails_clearly
def index_refine_and_commit(context: dg.AssetExecutionContext, lake: LakeResource,
                            catalog: CatalogResource) -> Iterator:
    months = _months_in_run(context)
    if selected(context, REFINED_INDEX_ASSET):
        yield from _refine_months(context, lake, catalog, months)
    if selected(context, INDEX_TABLE_ASSET):
        yield from _commit_months(context, catalog, months)


def _month_key(year: int, month: int) -> str:
    return dt.date(year, month, 1).isoformat()  # ibov_month_partitions' key of the month


def _rows_by_month(rows: pd.DataFrame, months: list[tuple[int, int]]) -> dict[tuple[int, int], pd.DataFrame]:
    """The rows (of INDEX_SCHEMA: staged or committed) of each month of the run."""
    return {(year, month): rows[(rows[YEAR] == year) & (rows[MONTH] == month)] for year, month in months}


def _refine_months(context: dg.AssetExecutionContext, lake: LakeResource, catalog: CatalogResource,
                   months: list[tuple[int, int]]) -> Iterator:
    """The months' refined rows into the run's staging folder; one materialisation per month, then the checks."""
    store = BarStore(lake.lake())
    raw_days = store.raw_days()
    first_day, last_day = dt.date(*months[0], 1), _month_end(*months[-1])
    empty = [f"{y}-{m:02d}" for y, m in months
             if not any(dt.date(y, m, 1) <= day <= _month_end(y, m) for day in raw_days)]
    if empty:
        raise RawPartitionMissing(f"no raw index bars for month(s) {empty}: materialise {RAW_INDEX_ASSET} first")
    lookback = _lookback_days(first_day, raw_days)
    in_run = [day for day in raw_days if first_day <= day <= last_day]
    refined = refine_index(store.read_raw(lookback + in_run), first_day)  # raises on a gap in the sessions
    # B3's official close per row, read (not declared as a dep: index_closes' reconciliation check reads
    # ibov_refined) from index_closes when it has been materialised; otherwise the column stays null
    tables = catalog.tables()
    official = on_current_scale(official_ibov_closes(tables, first_day, last_day))
    refined = with_official_closes(refined, official, official_date=CLOSE_DATE, official_close=OFFICIAL_CLOSE)
    official_note = (f"fechamento_oficial_b3 from b3_refined_db.index_closes on {len(official)} of "
                     f"{len(refined)} sessions" if tables.load(INDEX_CLOSES_TABLE_DEF) is not None else
                     "fechamento_oficial_b3 is null: b3_refined_db.index_closes has never been materialised")
    prefix = staging.run_prefix(REFINE_INDEX_DATASET, context.run.run_id)
    staging.remove(store.lake, prefix)
    staging.write_rows(store.lake, prefix, pa.Table.from_pandas(refined[INDEX_SCHEMA.names], schema=INDEX_SCHEMA,
                                                                preserve_index=False))
    staging.write_expected(store.lake, prefix, expected_months(in_run, months))  # last: the refine finished
    # the checks judge what is in storage, not what was meant to be written
    stored = staging.read_rows(store.lake, prefix, INDEX_SCHEMA).to_pandas(date_as_object=True)
    verdicts = [(name, check(stored)) for name, (check, _) in INDEX_CHECKS.items()]
    run = {
        "months": ", ".join(f"{y}-{m:02d}" for y, m in months),
        "lookback_sessions_read": len(lookback),
        "close_source": f"fonte_fechamento = yahoo on every row (Yahoo's ^BVSP bar); {official_note}",
        "staging": path(store.lake.uri(prefix)),
        **skipped_metadata(verdicts),
    }
    yield from partition_materialisations(REFINED_INDEX_ASSET, run, {
        _month_key(year, month): {
            "sessions": len(rows), "dagster/row_count": len(rows),
            "volatility_spikes": int(rows[VOLATILITY_SPIKE].sum()),
            "preview": preview(rows[[DATA, CLOSE, MA_SHORT, MA_LONG, VOLATILITY_PCT, VOL_ZSCORE,
                                     VOLATILITY_SPIKE]].tail(10)),
        } for (year, month), rows in _rows_by_month(stored, months).items()})
    yield from check_results(REFINED_INDEX_ASSET, verdicts)


def _commit_months(context: dg.AssetExecutionContext, catalog: CatalogResource,
                   months: list[tuple[int, int]]) -> Iterator:
    """The run's staged months into ibov_refined in one commit; one materialisation per month, then the check."""
    tables = catalog.tables()
    committed = commit_run(context, tables, INDEX_TABLE_DEF, REFINE_INDEX_DATASET,
                           [f"{year}/{month}" for year, month in months])
    connection = connect(tables, AsOf(snapshot_id=committed.snapshot_id), table_defs=[INDEX_TABLE_DEF])
    first, last = months[0], months[-1]
    rows = run_query(connection, f"SELECT * FROM {INDEX_DATABASE}.{INDEX_TABLE} WHERE {YEAR} * 100 + {MONTH} "
                                 f"BETWEEN {first[0] * 100 + first[1]} AND {last[0] * 100 + last[1]}")
    rows[DATA] = pd.to_datetime(rows[DATA]).dt.date
    by_month = _rows_by_month(rows, months)
    answer = run_query(connection, seed_001_query(*last))
    outcome = seed_query_answers(answer, by_month[last])
    official = official_ibov_closes(tables, min(rows[DATA]), max(rows[DATA])) if not rows.empty else pd.DataFrame()
    official_days = set(official[DATA]) if not official.empty else set()
    run = {"table": f"{INDEX_DATABASE}.{INDEX_TABLE}", **snapshot_metadata(tables, INDEX_TABLE_DEF, committed),
           "months": ", ".join(f"{y}-{m:02d}" for y, m in months)}
    metadata = {}
    for (year, month), month_rows in by_month.items():
        published = sum(day in official_days for day in month_rows[DATA])
        metadata[_month_key(year, month)] = {
            "dagster/row_count": len(month_rows),
            # seed 001's columns stay Yahoo's bar; the close of record is B3's where published (README)
            "close_source": f"preco_fechamento is Yahoo's ^BVSP close (the OHLCV bar of seed 001's features); B3's "
                            f"official close, the close of record, is published for {published} of the "
                            f"{len(month_rows)} sessions of {year}-{month:02d} (b3_refined_db.index_closes)",
            "seed_001_query": sql_block(seed_001_query(year, month)),
            **({"seed_001_answer": preview(answer)} if (year, month) == last else {}),
        }
    yield from partition_materialisations(INDEX_TABLE_ASSET, run, metadata)
    yield result(INDEX_TABLE_ASSET, "seed_001_query_answers", outcome)


def close_sources_text(record: pd.DataFrame) -> str:
    counts = record[CLOSE_SOURCE].value_counts()
    return (f"B3 oficial em {int(counts.get('b3', 0))} sessões, Yahoo em {int(counts.get('yahoo', 0))}")


def with_close_of_record(tables, rows: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """``rows`` (ibov_refined) with ``preco_fechamento`` replaced by the close of record and ``fonte_fechamento``
    saying where each came from; and a one-line count of the sources."""
    official = official_ibov_closes(tables, min(rows[DATA]), max(rows[DATA]))
    record = close_of_record(official, rows, yahoo_date=DATA, yahoo_close=CLOSE)
    merged = rows.drop(columns=[CLOSE]).merge(
        record.rename(columns={OFFICIAL_CLOSE: CLOSE}), on=DATA, how="left")
    return merged, close_sources_text(record)


# ---- charts ---------------------------------------------------------------------------------------------------------
def index_chart_sql(sessions_to_draw: int) -> str:
    return (f"SELECT {DATA}, {CLOSE}, {MA_SHORT}, {MA_LONG}, {VOL_ZSCORE}, {VOLATILITY_SPIKE} "
            f"FROM {INDEX_DATABASE}.{INDEX_TABLE} ORDER BY {DATA} DESC LIMIT {int(sessions_to_draw)}")


SECTOR_CHART_SQL = (f"SELECT {SECTOR}, {DATE}, {PART_SUM} FROM {CATALOG_DATABASE}.{PORTFOLIO_TABLE} "
                    f"WHERE {DATE} = (SELECT max({DATE}) FROM {CATALOG_DATABASE}.{PORTFOLIO_TABLE}) "
                    f"ORDER BY {PART_SUM} DESC")


@chart_asset(
    key=INDEX_CHART_ASSET,
    group_name=GROUP,
    deps=[INDEX_TABLE_ASSET, CLOSES_ASSET],  # the close of record comes from index_closes (with_close_of_record)
    description="Chart: IBOVESPA close with its 5- and 20-session moving averages and the volatility spikes "
                "marked, from ibov_refined. **To see it:** in this asset's latest materialisation, the first "
                "metadata row `chart` -> *[Show Markdown]* (one click; Dagster has no inline image type). The PNG "
                "is also saved in the lake as charts/ibov_close_moving_averages.png (the `file` row).",
)
@fails_clearly
def ibov_index_chart(config: ChartConfig, lake: LakeResource, catalog: CatalogResource) -> dg.MaterializeResult:
    sql = index_chart_sql(config.sessions)
    tables = catalog.tables()
    rows = run_query(connect(tables, table_defs=[INDEX_TABLE_DEF]), sql)
    if rows.empty:
        raise TableHasNoRows(f"{INDEX_DATABASE}.{INDEX_TABLE} has no rows yet: materialise {INDEX_TABLE_ASSET}")
    rows[DATA] = pd.to_datetime(rows[DATA]).dt.date
    rows, sources = with_close_of_record(tables, rows)
    png = png_bytes(close_chart_figure(rows, title=f"IBOVESPA: fechamento ({sources}) e médias móveis"))
    return dg.MaterializeResult(metadata={
        **chart(lake.lake(), "ibov_close_moving_averages.png", png,
                "IBOVESPA close, moving averages, volatility spikes"),
        "close_source": sources,
        "sessions": len(rows),
        "volatility_spikes": int(rows[VOLATILITY_SPIKE].sum()),
        "sql": sql_block(sql),
    })


@chart_asset(
    key=SECTOR_CHART_ASSET,
    group_name=GROUP,
    deps=[PORTFOLIO_TABLE_KEY],
    description="Chart: participation of each sector in the IBOV portfolio on the latest day of tb_ibov_refined. "
                "**To see it:** in this asset's latest materialisation, the first metadata row `chart` -> "
                "*[Show Markdown]* (one click; Dagster has no inline image type). The PNG is also saved in the lake "
                "as charts/ibov_sector_participation.png (the `file` row).",
)
@fails_clearly
def ibov_sector_chart(lake: LakeResource, catalog: CatalogResource) -> dg.MaterializeResult:
    rows = run_query(connect(catalog.tables(), table_defs=[PORTFOLIO_TABLE_DEF]), SECTOR_CHART_SQL)
    if rows.empty:
        raise TableHasNoRows(f"{CATALOG_DATABASE}.{PORTFOLIO_TABLE} has no rows yet: materialise it first")
    day = pd.Timestamp(rows[DATE].iloc[0]).date()
    png = render_sector_chart(rows, day)
    return dg.MaterializeResult(metadata={
        **chart(lake.lake(), "ibov_sector_participation.png", png, f"IBOV participation by sector on {day}"),
        "day": day.isoformat(),
        "sectors": len(rows),
        "sql": sql_block(SECTOR_CHART_SQL),
    })


index_assets = [ibov_index_raw, index_refine_and_commit, ibov_index_chart, ibov_sector_chart]


# ---- official closes ------------------------------------------------------------------------------------------------
@raw_asset(
    key=HISTORY_RAW_ASSET,
    partitions_def=history_partitions,
    kinds={"json"},
    description="B3's official daily closes of one index for one year, as B3's indexStatisticsProxy answers them "
                "(31 days x 12 months grid with monthly min/max), kept as B3's body under "
                "raw/index_history/indice=<index>/ano=<year>/. B3 serves past years again: a different answer "
                "archives the old one (archive/), nothing is deleted.",
)
@fails_clearly
def index_history_raw(context: dg.AssetExecutionContext, b3_indices: B3IndicesResource,
                      lake: LakeResource) -> dg.MaterializeResult:
    keys = context.partition_key.keys_by_dimension
    index, year = keys["indice"], int(keys["ano"])
    client = b3_indices.history_client()
    body, parsed = client.fetch_year(index, year)
    written = indices_store(lake).write_grid(index, year, client.language, body)
    return dg.MaterializeResult(metadata={
        "index": index, "year": year, "closes": len(parsed.closes),
        "last_close": str(parsed.last_day) if parsed.last_day else "none",
        "request": client.url(index, year), "status": written.status, "location": path(written.uri),
        "dagster/row_count": len(parsed.closes),
    })


def _through(year_data: IndexYear, today: dt.date) -> Optional[dt.date]:
    """The day up to which the year must be complete: the last close for the current year (B3 publishes a
    session's close after it ends) and for an "Evolução Diária" download (complete as of the day it was saved);
    the whole year for a past year's grid."""
    downloaded = year_data.source.endswith(DAILY_CSV_NAME)
    return year_data.last_day if downloaded or year_data.year >= today.year else None


def _monthly_verdict(store: B3IndicesStore, stored: pd.DataFrame) -> CheckOutcome:
    """The imported Evolução Mensal months against the daily closes just committed."""
    monthly, downloads = store.monthly()
    if monthly.empty:
        return CheckOutcome.skip("no Evolução Mensal download imported (b3-dagster import-index-history "
                                 "Evolucao_Mensal.csv)")
    found = check_monthly_matches_daily(monthly, stored)
    return CheckOutcome.skip(f"{found.reason} ({len(downloads)} monthly download(s))") if isinstance(found, Skipped) \
        else found


def _ibov_refined(catalog: CatalogResource) -> pd.DataFrame:
    """Every row of ibov_refined (Yahoo's bars with seed 001's features); empty before its first commit."""
    tables = catalog.tables()
    if tables.load(INDEX_TABLE_DEF) is None:
        return pd.DataFrame(columns=INDEX_TABLE_DEF.schema.names)
    rows = run_query(connect(tables, table_defs=[INDEX_TABLE_DEF]),
                     f"SELECT * FROM {INDEX_TABLE_DEF.qualified_name} ORDER BY {DATA}")
    rows[DATA] = pd.to_datetime(rows[DATA]).dt.date
    return rows


@table_asset(
    decorator=asset_with_checks,  # not @dg.asset: a skipped check must be left out (defs/portfolio/checks.py)
    key=CLOSES_ASSET,
    group_name=INDICES_GROUP,  # every B3 index's assets (README, group b3_indices)
    deps=[HISTORY_RAW_ASSET, IBOV_REFINED_KEY],
    check_specs=specs(CLOSES_ASSET, CLOSES_CHECKS),
    description="b3_refined_db.index_closes (data, indice, fechamento): B3's official daily closes of every index "
                "stored in raw (year grids and imported Evolução Diária downloads), as B3 publishes them (IBOV "
                "before 1997-03-03 is not rescaled). Rebuilt from raw and replaced per index in one commit. "
                "The close of record (README): B3's; Yahoo keeps the OHLCV bar.",
)
@fails_clearly
def index_closes(context: dg.AssetExecutionContext, lake: LakeResource,
                 catalog: CatalogResource) -> Iterator[dg.MaterializeResult]:
    store = indices_store(lake)
    years = store.years()
    if not years:
        raise Missing(f"no B3 index history in {store.lake.uri(HISTORY_PREFIX)}: materialise "
                      f"{HISTORY_RAW_ASSET} or run b3-dagster import-index-history first")
    rows, sources = store.closes()
    tables = catalog.tables()
    committed = commit_rows(tables, INDEX_CLOSES_TABLE_DEF, rows, sorted(set(rows[INDEX_CODE])), context)
    stored = run_query(connect(tables, table_defs=[INDEX_CLOSES_TABLE_DEF]),
                       f"SELECT * FROM {INDEX_CLOSES_TABLE_DEF.qualified_name}")
    stored[CLOSE_DATE] = pd.to_datetime(stored[CLOSE_DATE]).dt.date
    today = dt.datetime.now(dt.timezone.utc).date()
    verdicts = [
        ("published_min_max_equal_grid", combine_outcomes("min/max", [check_published_min_max(y) for y in years])),
        ("closes_on_sessions", combine_outcomes("sessions", [check_closes_on_sessions(y, _through(y, today))
                                                     for y in years])),
        ("monthly_matches_daily", _monthly_verdict(store, stored)),
    ]
    ibov = stored[stored[INDEX_CODE] == DEFAULT_INDEX]
    yahoo = _ibov_refined(catalog)
    if ibov.empty or yahoo.empty:
        reconciliation = CheckOutcome.skip("no IBOV official closes" if ibov.empty else
                                           "ibov_refined (Yahoo) has no rows yet")
    else:
        found = reconcile_with_yahoo(ibov, yahoo, yahoo_date=DATA, yahoo_close=CLOSE).outcome()
        span = f"B3 {ibov[CLOSE_DATE].min()}..{ibov[CLOSE_DATE].max()}, Yahoo {yahoo[DATA].min()}..{yahoo[DATA].max()}"
        reconciliation = (CheckOutcome.skip(f"{found.reason} ({span})") if isinstance(found, Skipped) else found)
    evaluated = [*verdicts, ("yahoo_reconciles_with_b3", reconciliation)]
    results = check_results(CLOSES_ASSET, verdicts)
    if reconciliation.skipped is None and check_selected(CLOSES_ASSET, "yahoo_reconciles_with_b3"):
        results.append(warn_result(CLOSES_ASSET, "yahoo_reconciles_with_b3", reconciliation))
    per_index = rows.groupby(INDEX_CODE)[CLOSE_DATE].agg(["min", "max", "count"]).reset_index()
    yield dg.MaterializeResult(
        metadata={
            **committed,
            "indices": ", ".join(sorted(set(rows[INDEX_CODE]))),
            "years": len(years),
            "by_index": preview(per_index.astype(str)),
            "sources": dg.MetadataValue.md("\n".join(f"- {i} {y}: {s}" for (i, y), s in sorted(sources.items()))),
            "monthly_downloads": dg.MetadataValue.md("\n".join(f"- {s}" for s in store.monthly()[1]) or "none"),
            **skipped_metadata(evaluated),
        },
        check_results=results,
    )


# ---- anomaly score --------------------------------------------------------------------------------------------------
class AnomalyConfig(dg.Config):
    contamination: float = Field(default=AnomalySettings.contamination, gt=0, le=0.5,
                                 description="Share of days labelled anomalous.")
    n_estimators: int = Field(default=AnomalySettings.n_estimators, ge=10, le=5000, description="Trees.")
    random_state: int = Field(default=AnomalySettings.random_state, description="The forest's fixed seed.")

    def settings(self) -> AnomalySettings:
        return AnomalySettings(n_estimators=self.n_estimators, contamination=self.contamination,
                               random_state=self.random_state)


@table_asset(
    key=ANOMALY_ASSET,
    group_name=INDICES_GROUP,  # every B3 index's assets (README, group b3_indices)
    deps=[IBOV_REFINED_KEY],
    kinds={"scikitlearn"},
    check_specs=[dg.AssetCheckSpec(name="scores_reproducible", asset=ANOMALY_ASSET,
                                   description="Fitting again on the same rows with the same settings gives the "
                                               "same scores and flags, day by day.")],
    description="b3_refined_db.ibov_anomalies (data, features, anomalia_score, anomalia): scikit-learn's "
                "IsolationForest with a fixed seed, fitted on ibov_refined's amplitude, volatility %, z-score and "
                "daily change (seed 001's next step). Refitted on the whole history at every run; settings in the "
                "metadata. The first 19 sessions (no z-score) are not scored.",
)
@fails_clearly
def ibov_anomalies(context: dg.AssetExecutionContext, config: AnomalyConfig,
                   catalog: CatalogResource) -> dg.MaterializeResult:
    refined = _ibov_refined(catalog)
    if refined.empty:
        raise TableHasNoRows(f"{INDEX_TABLE_DEF.qualified_name} has no rows yet: materialise it first")
    result = score_anomalies(refined, config.settings())
    scores = result.scores
    tables = catalog.tables()
    committed = commit_rows(tables, ANOMALY_TABLE_DEF, scores, [d.isoformat() for d in scores[DATA]], context)
    outcome = check_reproducible(refined, result)
    top = scores.sort_values("anomalia_score", ascending=False).head(10)
    return dg.MaterializeResult(
        metadata={**committed, **{k: (v if isinstance(v, (str, int, float, bool)) else dg.MetadataValue.json(v))
                                  for k, v in result.metadata().items()},
                  "most_anomalous": preview(top)},
        check_results=[dg.AssetCheckResult(
            asset_key=ANOMALY_ASSET, check_name="scores_reproducible", passed=bool(outcome.passed),
            description=outcome.description,
            metadata={k: v for k, v in outcome.metadata.items() if isinstance(v, (str, int, float, bool))})],
    )


@chart_asset(
    key=ANOMALY_CHART_ASSET,
    group_name=INDICES_GROUP,  # every B3 index's assets (README, group b3_indices)
    deps=[ANOMALY_ASSET],
    description="Chart: the IBOVESPA close with the anomalous days (x) beside the volatility z-score spikes, and "
                "the anomaly score below. **To see it:** the metadata row `chart` -> *[Show Markdown]*; the PNG "
                "is also saved as charts/ibov_anomalies.png.",
)
@fails_clearly
def ibov_anomaly_chart(lake: LakeResource, catalog: CatalogResource) -> dg.MaterializeResult:
    refined = _ibov_refined(catalog)
    tables = catalog.tables()
    scores = run_query(connect(tables, table_defs=[ANOMALY_TABLE_DEF]),
                       f"SELECT * FROM {ANOMALY_TABLE_DEF.qualified_name}")
    if refined.empty or scores.empty:
        raise TableHasNoRows(f"{ANOMALY_TABLE_DEF.qualified_name} or {INDEX_TABLE_DEF.qualified_name} has no rows "
                             f"yet: materialise {ANOMALY_ASSET} first")
    scores[DATA] = pd.to_datetime(scores[DATA]).dt.date
    png = render_anomaly_chart(refined, scores)
    return dg.MaterializeResult(metadata={
        **chart(lake.lake(), "ibov_anomalies.png", png, "IBOVESPA anomalies and volatility spikes"),
        "anomalous_days": int(scores["anomalia"].sum()), "sessions": len(refined),
    })
