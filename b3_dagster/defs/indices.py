"""Every B3 index (issue 14), group ``b3_indices``: B3's official index closes, index membership, the portfolios of
any index, and the anomaly score of the IBOVESPA days.

- ``index_history_raw``: B3's year grid (``indexStatisticsProxy``) of one (year, index), kept as B3's body under
  ``raw/index_history/``. Partitioned by ``ano`` × ``indice`` (the configured indices, ``B3_INDICES``).
- ``index_closes``: ``b3_refined_db.index_closes`` (data, indice, fechamento), rebuilt from every stored grid and
  imported "Evolução Diária" download (``b3-dagster import-index-history``), one commit per run. Checks: the
  published monthly min/max equal the grid, closes on B3 sessions and every session with a close, the imported
  "Evolução Mensal" month-end closes equal the daily ones, and the
  reconciliation of Yahoo's ^BVSP close (ibov_refined) with B3's IBOV close (WARN: it names the days outside).
- ``index_membership_raw`` (one partition per B3 session) keeps B3's GetStockIndex answer; ``index_membership``:
  ``b3_refined_db.index_membership``, checked against each index's portfolio of the same day.
- ``index_portfolios``: ``b3_refined_db.index_portfolios``, every stored "Carteira do Dia" portfolio of any index
  (``b3-dagster import-index-csv``), one row per (index, day, ticker).
- ``ibov_anomalies``: IsolationForest on ibov_refined's features -> ``b3_refined_db.ibov_anomalies``; checked
  reproducible; ``ibov_anomaly_chart`` marks the anomalies beside the z-score spikes.

A check with nothing to compare is left out of the result (Dagster shows it skipped) and its reason goes into the
``skipped_checks`` metadata (defs/checks.py).
"""


import datetime as dt
from typing import Iterator, Optional

import dagster as dg
import pandas as pd
import pyarrow as pa
from pydantic import Field

from b3_dagster.calendar import B3_TIMEZONE
from b3_dagster.charts import render_anomaly_chart
from b3_dagster.defs.checks import asset_with_checks, check_results, skipped_metadata, specs
from b3_dagster.defs.metadata import chart, chart_asset, path, preview
from b3_dagster.defs.partitions import trading_day_partitions
from b3_dagster.defs.resources import B3PortfolioResource, CatalogResource, HttpResource, LakeResource
from b3_dagster.defs.table_commit import snapshot_metadata, table_asset
from b3_dagster.defs.failures import fails_clearly
from b3_dagster import settings
from b3_dagster.errors import ConfigError, Missing, NotReady, TableHasNoRows
from b3_dagster.model import (
    CLOSE_DATE,
    DEFAULT_INDEX,
    EVENT_FLAG,
    INDEX_CODE,
    LISTING_SEGMENT,
    RAW_DATE_COLUMN,
    SHARE_CLASS,
)
from b3_dagster.quality import CheckOutcome
from b3_dagster.sources.b3_index_history import (
    FIRST_YEAR,
    B3IndexHistoryClient,
    IndexYear,
    Skipped,
    check_closes_on_sessions,
    check_monthly_matches_daily,
    check_published_min_max,
    reconcile_with_yahoo,
)
from b3_dagster.sources.b3_index_csv import split_type
from b3_dagster.sources.b3_stock_index import B3StockIndexClient, compare_with_portfolio
from b3_dagster.sources.http import HttpPolicy
from b3_dagster.storage.indices_store import IndicesStore
from b3_dagster.storage.layout import DAILY_CSV_NAME, HISTORY_PREFIX
from b3_dagster.storage.portfolio_store import PortfolioStore
from b3_dagster.storage.tables import (
    ANOMALY_TABLE_DEF,
    INDEX_CLOSES_TABLE_DEF,
    INDEX_PORTFOLIOS_TABLE_DEF,
    INDEX_TABLE_DEF,
    MEMBERSHIP_TABLE_DEF,
    connect,
    run_query,
)
from b3_dagster.model import CLOSE, DATA
from b3_dagster.quality import check_reproducible
from b3_dagster.transforms.anomaly import AnomalySettings, score_anomalies

GROUP = "b3_indices"
INDICES_SETTING = "B3_INDICES"
HISTORY_RAW_ASSET = "index_history_raw"
CLOSES_ASSET = "index_closes"
MEMBERSHIP_RAW_ASSET = "index_membership_raw"
MEMBERSHIP_ASSET = "index_membership"
PORTFOLIOS_ASSET = "index_portfolios"
PORTFOLIO_RAW_ASSET = "index_portfolio_raw"
ANOMALY_ASSET = "ibov_anomalies"
ANOMALY_CHART_ASSET = "ibov_anomaly_chart"
IBOV_REFINED_KEY = dg.AssetKey(INDEX_TABLE_DEF.name)  # defs/index_assets.py


def configured_indices() -> list[str]:
    """``B3_INDICES`` (comma-separated B3 codes), read when the code location loads: the indices are a partition
    dimension, part of the definitions (like ``B3_PARTITIONS_START``)."""
    text = settings.get(INDICES_SETTING)
    codes = list(dict.fromkeys(code.strip().upper() for code in text.split(",") if code.strip()))
    bad = [code for code in codes if not code.isalnum() or not 3 <= len(code) <= 5]
    if bad or not codes:
        raise ConfigError(f"{INDICES_SETTING}={text!r}: expected B3 index codes separated by commas, e.g. "
                          f"IBOV,IBXX,SMLL (bad: {bad or 'empty'})")
    return codes


INDICES = configured_indices()
index_dimension = dg.StaticPartitionsDefinition(INDICES)
# One key per (year, index): B3 serves each index's closes per year since 1968; the current year is a key too.
history_partitions = dg.MultiPartitionsDefinition({
    "ano": dg.TimeWindowPartitionsDefinition(cron_schedule="0 0 1 1 *", start=str(FIRST_YEAR), fmt="%Y",
                                             timezone=B3_TIMEZONE, end_offset=1),
    "indice": index_dimension,
})


class B3IndicesResource(HttpResource):
    """Settings of B3's index endpoints (year grids, GetStockIndex): the same host as GetPortfolioDay."""

    base_url: str = Field(default=settings.default("B3_BASE_URL"),
                          description="B3 host (the demo and tests point at a replay).")
    language: str = Field(default="pt-br", description="Language of the year grids (sets their number format).")

    def policy(self) -> HttpPolicy:
        return self.http_policy()

    def history_client(self) -> B3IndexHistoryClient:
        return B3IndexHistoryClient(base_url=self.base_url, language=self.language, policy=self.policy())

    def stock_index_client(self) -> B3StockIndexClient:
        return B3StockIndexClient(base_url=self.base_url, policy=self.policy())


def _store(lake: LakeResource) -> IndicesStore:
    return IndicesStore(lake.lake())


def _commit(tables, table_def, rows: pd.DataFrame, keys: list[str], context) -> dict:
    arrow = pa.Table.from_pandas(rows[table_def.schema.names], schema=table_def.schema, preserve_index=False)
    outcome = tables.commit(table_def, arrow, keys, {"dagster.run_id": context.run.run_id})
    return {"table": table_def.qualified_name, **snapshot_metadata(tables, table_def, outcome),
            "dagster/row_count": outcome.rows}


def _combine(name: str, outcomes: list[CheckOutcome | Skipped]) -> CheckOutcome:
    """One verdict over many years: failed if any failed, passed if the others passed, skipped if none was judged."""
    judged = [o for o in outcomes if isinstance(o, CheckOutcome) and o.skipped is None]
    skipped = [o.reason if isinstance(o, Skipped) else o.skipped for o in outcomes
               if isinstance(o, Skipped) or o.skipped is not None]
    if not judged:
        return CheckOutcome.skip("; ".join(skipped[:5]) or f"{name}: nothing to check",
                                 {"skipped_years": len(skipped)})
    failed = [o.description for o in judged if not o.passed]
    return CheckOutcome(not failed, ("; ".join(failed[:5]) if failed else
                                     f"{len(judged)} year(s) checked: " + "; ".join(o.description for o in judged[:3])
                                     + (" ..." if len(judged) > 3 else "")),
                        {"years_checked": len(judged), "years_failed": len(failed), "years_skipped": len(skipped),
                         "skipped_reasons": skipped[:20]})


def _warn_result(asset: str, name: str, outcome: CheckOutcome) -> dg.AssetCheckResult:
    metadata = {key: (value if isinstance(value, (str, int, float, bool)) else dg.MetadataValue.json(value))
                for key, value in outcome.metadata.items() if value is not None}
    return dg.AssetCheckResult(asset_key=asset, check_name=name, passed=bool(outcome.passed),
                               severity=dg.AssetCheckSeverity.WARN, description=outcome.description,
                               metadata={**metadata, "summary": outcome.description})


def _raw_asset(*, key: str, partitions_def: dg.PartitionsDefinition, kinds: set[str], description: str):
    """The decorator of this group's raw assets: one B3 answer per partition, kept as B3 served it."""
    return dg.asset(key=key, group_name=GROUP, partitions_def=partitions_def, kinds=kinds, description=description)


# ---- official closes ------------------------------------------------------------------------------------------------
@_raw_asset(
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
    written = _store(lake).write_grid(index, year, client.language, body)
    return dg.MaterializeResult(metadata={
        "index": index, "year": year, "closes": len(parsed.closes),
        "last_close": str(parsed.last_day) if parsed.last_day else "none",
        "request": client.url(index, year), "status": written.status, "location": path(written.uri),
        "dagster/row_count": len(parsed.closes),
    })


CLOSES_CHECKS = {
    "published_min_max_equal_grid": "Each month's published minimum and maximum equal the grid's own cells.",
    "closes_on_sessions": "Every close falls on a B3 session and every session of the year so far has a close "
                          "(skipped before the project's calendar, which lacks old B3 holidays).",
    "monthly_matches_daily": "Each month's value in the imported Evolução Mensal downloads equals that month's last "
                             "daily close, wherever the daily closes hold the whole month (skipped where they share "
                             "no month; the download's month in progress is named, not failed).",
    "yahoo_reconciles_with_b3": "Yahoo's ^BVSP close (ibov_refined) equals B3's official IBOV close within "
                                "±0.55 points; the days outside are named (WARN).",
}


def _through(year_data: IndexYear, today: dt.date) -> Optional[dt.date]:
    """The day up to which the year must be complete: the last close for the current year (B3 publishes a
    session's close after it ends) and for an "Evolução Diária" download (complete as of the day it was saved);
    the whole year for a past year's grid."""
    downloaded = year_data.source.endswith(DAILY_CSV_NAME)
    return year_data.last_day if downloaded or year_data.year >= today.year else None


@table_asset(
    decorator=asset_with_checks,  # not @dg.asset: a skipped check must be left out (defs/checks.py)
    key=CLOSES_ASSET,
    group_name=GROUP,
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
    store = _store(lake)
    years = store.years()
    if not years:
        raise Missing(f"no B3 index history in {store.lake.uri(HISTORY_PREFIX)}: materialise "
                      f"{HISTORY_RAW_ASSET} or run b3-dagster import-index-history first")
    rows, sources = store.closes()
    tables = catalog.tables()
    committed = _commit(tables, INDEX_CLOSES_TABLE_DEF, rows, sorted(set(rows[INDEX_CODE])), context)
    stored = run_query(connect(tables, table_defs=[INDEX_CLOSES_TABLE_DEF]),
                       f"SELECT * FROM {INDEX_CLOSES_TABLE_DEF.qualified_name}")
    stored[CLOSE_DATE] = pd.to_datetime(stored[CLOSE_DATE]).dt.date
    today = dt.datetime.now(dt.timezone.utc).date()
    verdicts = [
        ("published_min_max_equal_grid", _combine("min/max", [check_published_min_max(y) for y in years])),
        ("closes_on_sessions", _combine("sessions", [check_closes_on_sessions(y, _through(y, today))
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
    if reconciliation.skipped is None and _selected(CLOSES_ASSET, "yahoo_reconciles_with_b3"):
        results.append(_warn_result(CLOSES_ASSET, "yahoo_reconciles_with_b3", reconciliation))
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


def _monthly_verdict(store: IndicesStore, stored: pd.DataFrame) -> CheckOutcome:
    """The imported Evolução Mensal months against the daily closes just committed."""
    monthly, downloads = store.monthly()
    if monthly.empty:
        return CheckOutcome.skip("no Evolução Mensal download imported (b3-dagster import-index-history "
                                 "Evolucao_Mensal.csv)")
    found = check_monthly_matches_daily(monthly, stored)
    return CheckOutcome.skip(f"{found.reason} ({len(downloads)} monthly download(s))") if isinstance(found, Skipped) \
        else found


def _selected(asset: str, name: str) -> bool:
    try:
        context = dg.AssetExecutionContext.get()
    except Exception:  # noqa: BLE001 (no run in progress: direct invocation)
        return True
    return dg.AssetCheckKey(dg.AssetKey(asset), name) in context.selected_asset_check_keys


def _ibov_refined(catalog: CatalogResource) -> pd.DataFrame:
    """Every row of ibov_refined (Yahoo's bars with seed 001's features); empty before its first commit."""
    tables = catalog.tables()
    if tables.load(INDEX_TABLE_DEF) is None:
        return pd.DataFrame(columns=INDEX_TABLE_DEF.schema.names)
    rows = run_query(connect(tables, table_defs=[INDEX_TABLE_DEF]),
                     f"SELECT * FROM {INDEX_TABLE_DEF.qualified_name} ORDER BY {DATA}")
    rows[DATA] = pd.to_datetime(rows[DATA]).dt.date
    return rows


# ---- membership -----------------------------------------------------------------------------------------------------
@_raw_asset(
    key=MEMBERSHIP_RAW_ASSET,
    partitions_def=trading_day_partitions,
    kinds={"json"},
    description="B3's GetStockIndex answer (every listed security and the indices it belongs to), kept as B3's "
                "body under raw/index_membership/date=<B3's update day>/. B3 serves only the current list.",
)
@fails_clearly
def index_membership_raw(context: dg.AssetExecutionContext, b3_indices: B3IndicesResource,
                         lake: LakeResource) -> dg.MaterializeResult:
    body, answer = b3_indices.stock_index_client().fetch()
    written, _ = _store(lake).write_membership(body, answer.source)
    if answer.update.isoformat() != context.partition_key:
        context.log.info(f"B3's membership list of {answer.update} answered for session {context.partition_key}: "
                         "kept under its own update day")
    return dg.MaterializeResult(metadata={
        "update": answer.update.isoformat(), "securities": answer.securities, "indices": len(answer.indices()),
        "memberships": len(answer.membership), "status": written.status, "location": path(written.uri),
        "dagster/row_count": len(answer.membership),
    })


MEMBERSHIP_CHECKS = {
    "membership_matches_portfolios": "The members GetStockIndex lists for an index equal that index's portfolio of "
                                     "the same day, wherever a portfolio of that day is stored (skipped where none).",
}


def _portfolios_by_day(lake: LakeResource, days: list[dt.date]) -> dict[tuple[str, dt.date], set[str]]:
    """Codes of every stored portfolio of ``days``: IBOV's raw days (GetPortfolioDay, IBOVDia imports) and every
    index's imported Carteira do Dia."""
    found: dict[tuple[str, dt.date], set[str]] = {}
    ibov = PortfolioStore(lake.lake())
    for day in sorted(set(ibov.raw_days()) & set(days)):
        found[(DEFAULT_INDEX, day)] = set(ibov.read_raw(day).rows["cod"])
    rows, _ = _store(lake).portfolios()
    for (index, day), codes in rows.groupby([INDEX_CODE, RAW_DATE_COLUMN])["cod"]:
        found.setdefault((index, day), set(codes))
    return found


@table_asset(
    decorator=asset_with_checks,
    key=MEMBERSHIP_ASSET,
    group_name=GROUP,
    deps=[MEMBERSHIP_RAW_ASSET],
    check_specs=specs(MEMBERSHIP_ASSET, MEMBERSHIP_CHECKS),
    description="b3_refined_db.index_membership: one row per (update day, security, index it belongs to), from "
                "every stored GetStockIndex answer; replaced per update day in one commit.",
)
@fails_clearly
def index_membership(context: dg.AssetExecutionContext, lake: LakeResource,
                     catalog: CatalogResource) -> Iterator[dg.MaterializeResult]:
    store = _store(lake)
    days = store.membership_days()
    if not days:
        raise Missing(f"no GetStockIndex answer stored: materialise {MEMBERSHIP_RAW_ASSET} first")
    answers = [store.read_membership(day) for day in days]
    rows = pd.concat([answer.membership for answer in answers], ignore_index=True)
    committed = _commit(catalog.tables(), MEMBERSHIP_TABLE_DEF, rows, [d.isoformat() for d in days], context)
    portfolios = _portfolios_by_day(lake, days)
    compared = [compare_with_portfolio(answer, index, portfolios[(index, answer.update)], answer.update)
                for answer in answers for index in answer.indices() if (index, answer.update) in portfolios]
    verdict = _combine("membership", compared) if compared else CheckOutcome.skip(
        f"no stored portfolio of any index on the membership days {[d.isoformat() for d in days]}")
    verdicts = [("membership_matches_portfolios", verdict)]
    yield dg.MaterializeResult(
        metadata={**committed, "update_days": ", ".join(d.isoformat() for d in days),
                  "compared": dg.MetadataValue.md("\n".join(f"- {o.description}" for o in compared) or "none"),
                  **skipped_metadata(verdicts)},
        check_results=check_results(MEMBERSHIP_ASSET, verdicts),
    )


# ---- portfolios of any index ----------------------------------------------------------------------------------------
portfolio_partitions = dg.MultiPartitionsDefinition({"dia": trading_day_partitions, "indice": index_dimension})


@_raw_asset(
    key=PORTFOLIO_RAW_ASSET,
    partitions_def=portfolio_partitions,
    kinds={"parquet"},
    description="One index's portfolio of one B3 session from GetPortfolioDay (the index travels in the request's "
                "payload), kept under raw/index_portfolio/indice=<index>/date=<day>/GetPortfolioDay.parquet. "
                "Partitioned dia x indice (B3_INDICES). B3 serves only the current portfolio: a past key cannot be "
                "fetched again. IBOV's by-sector pipeline (ibov_raw_snapshot) is separate and unchanged.",
)
@fails_clearly
def index_portfolio_raw(context: dg.AssetExecutionContext, b3: B3PortfolioResource,
                        lake: LakeResource) -> dg.MaterializeResult:
    keys = context.partition_key.keys_by_dimension
    index, day = keys["indice"], dt.date.fromisoformat(keys["dia"])
    client = b3.client()
    client.index = index  # the payload's "index" (B3PortfolioClient(index=...)); the rest from the resource
    snapshot = client.fetch()
    if snapshot.portfolio_date != day:
        raise (NotReady if snapshot.portfolio_date < day else Missing)(
            f"B3 answered the {index} portfolio of {snapshot.portfolio_date}, not of {day}: B3 serves only the "
            "current portfolio; nothing was written", served_date=str(snapshot.portfolio_date), partition=str(day))
    rows = snapshot.rows.copy()
    rows.insert(0, INDEX_CODE, index)
    parts = rows["type"].map(split_type)
    rows[SHARE_CLASS], rows[EVENT_FLAG], rows[LISTING_SEGMENT] = zip(*parts) if len(rows) else ([], [], [])
    written = _store(lake).write_api_portfolio(index, rows, snapshot.source or client.page_url(1))
    return dg.MaterializeResult(metadata={"index": index, "day": day.isoformat(), "tickers": len(rows),
                                          "status": written.status, "location": path(written.uri),
                                          "dagster/row_count": len(rows)})


@table_asset(
    key=PORTFOLIOS_ASSET,
    group_name=GROUP,
    deps=[PORTFOLIO_RAW_ASSET],
    description="b3_refined_db.index_portfolios: one row per (index, day, ticker) of every stored Carteira do Dia "
                "portfolio of any index (b3-dagster import-index-csv), with B3's Tipo split into share class, event "
                "flag and listing segment. Replaced per index in one commit. tb_ibov_refined stays IBOV by sector.",
)
@fails_clearly
def index_portfolios(context: dg.AssetExecutionContext, lake: LakeResource,
                     catalog: CatalogResource) -> dg.MaterializeResult:
    rows, parsed = _store(lake).portfolios()
    if rows.empty:
        raise Missing("no portfolio of any index stored: run b3-dagster import-index-csv first")
    committed = _commit(catalog.tables(), INDEX_PORTFOLIOS_TABLE_DEF, rows, sorted(set(rows[INDEX_CODE])), context)
    days = rows.groupby(INDEX_CODE)[RAW_DATE_COLUMN].agg(["min", "max", "nunique"]).reset_index()
    altered = [p.source for p in parsed if p.alterations]
    return dg.MaterializeResult(metadata={
        **committed, "indices": ", ".join(sorted(set(rows[INDEX_CODE]))), "by_index": preview(days.astype(str)),
        "altered_copies": dg.MetadataValue.md("\n".join(f"- {a}" for a in altered) or "none"),
    })


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
    group_name=GROUP,
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
    committed = _commit(tables, ANOMALY_TABLE_DEF, scores, [d.isoformat() for d in scores[DATA]], context)
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
    group_name=GROUP,
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


def _asset_job(name: str, assets: list, description: str):
    return dg.define_asset_job(name, selection=dg.AssetSelection.assets(*assets), description=description)


indices_assets = [index_history_raw, index_closes, index_membership_raw, index_membership, index_portfolio_raw,
                  index_portfolios, ibov_anomalies, ibov_anomaly_chart]
index_history_job = _asset_job("index_history_job", [index_history_raw],
                                "Fetch B3's official closes of the selected (year, index) keys.")
index_closes_job = _asset_job("index_closes_job", [index_closes],
                               "Rebuild b3_refined_db.index_closes from raw and check it (min/max, sessions, Yahoo).")
membership_job = _asset_job("index_membership_job", [index_membership_raw],
                             "Keep B3's GetStockIndex answer of the session.")
membership_table_job = _asset_job("index_membership_table_job", [index_membership],
                                   "Rebuild b3_refined_db.index_membership and compare it with the portfolios of "
                                   "the same days.")
index_portfolio_raw_job = _asset_job("index_portfolio_raw_job", [index_portfolio_raw],
                                      "Fetch the selected (session, index) portfolios from B3's GetPortfolioDay.")
index_portfolios_job = _asset_job("index_portfolios_job", [index_portfolios],
                                   "Rebuild b3_refined_db.index_portfolios from every stored Carteira do Dia.")
anomaly_job = _asset_job("ibov_anomaly_job", [ibov_anomalies, ibov_anomaly_chart],
                          "Score the IBOVESPA days (IsolationForest) and draw the anomaly chart.")
indices_jobs = [index_history_job, index_closes_job, membership_job, membership_table_job, index_portfolio_raw_job,
                index_portfolios_job, anomaly_job]


def indices_resources(base_url) -> dict:
    return {"b3_indices": B3IndicesResource(base_url=base_url)}


# ---- schedules: every B3 session, one run per configured index ------------------------------------------------------
def _session_runs(context: dg.ScheduleEvaluationContext, what: str, keys) -> list[dg.RunRequest] | dg.SkipReason:
    """The run requests of one tick: ``keys(day)`` -> partition keys, one run each (one index failing does not block
    the others); on weekends and B3 holidays the tick is skipped with the reason (as ibov_daily_schedule does)."""
    from zoneinfo import ZoneInfo

    from b3_dagster.automation_rules import schedule_decision

    day, reason = schedule_decision(context.scheduled_execution_time.astimezone(ZoneInfo(B3_TIMEZONE)))
    if day is None:
        return dg.SkipReason(f"{reason.split(':')[0]}: B3 does not trade, there are no {what} to take")
    # the session day in the run key: the current year's key (2026|IBOV) is requested again every session, and
    # Dagster drops a request whose run key it has seen
    return [dg.RunRequest(run_key=f"{what.replace(' ', '_')}:{day}:{key}", partition_key=key,
                          tags={"b3/trigger": "schedule"}) for key in keys(dt.date.fromisoformat(day))]


def _schedule_settings() -> dict:
    from b3_dagster.defs.automation import SNAPSHOT_CRON, default_schedule_status

    return {"cron_schedule": SNAPSHOT_CRON, "execution_timezone": B3_TIMEZONE,
            "default_status": default_schedule_status()}


@dg.schedule(name="index_portfolios_daily_schedule", job=index_portfolio_raw_job, **_schedule_settings(),
             description="Every B3 session: one index_portfolio_raw run per configured index (B3_INDICES), key "
                         "<session>|<index>. Skipped with the reason on weekends and B3 holidays.")
def index_portfolios_daily_schedule(context: dg.ScheduleEvaluationContext):
    return _session_runs(context, "index portfolios", lambda day: [f"{day.isoformat()}|{index}" for index in INDICES])


@dg.schedule(name="index_history_daily_schedule", job=index_history_job, **_schedule_settings(),
             description="Every B3 session: B3's year grid of the current year, one run per configured index (key "
                         "<year>|<index>); the grid grows by a day, the previous answer is archived.")
def index_history_daily_schedule(context: dg.ScheduleEvaluationContext):
    return _session_runs(context, "official closes", lambda day: [f"{day.year}|{index}" for index in INDICES])


@dg.schedule(name="index_membership_daily_schedule", job=membership_job, **_schedule_settings(),
             description="Every B3 session: B3's GetStockIndex answer (the membership of every index) into raw.")
def index_membership_daily_schedule(context: dg.ScheduleEvaluationContext):
    return _session_runs(context, "index membership", lambda day: [day.isoformat()])


indices_schedules = [index_portfolios_daily_schedule, index_history_daily_schedule, index_membership_daily_schedule]
