"""The portfolio pipeline: raw snapshot -> sector refine (DuckDB | Glue) -> Iceberg table; the portfolios and
membership of every configured index."""

import datetime as dt
from typing import Iterator, Optional

import dagster as dg
import pandas as pd
from pydantic import Field

from b3_dagster.calendar import B3_TIMEZONE
from b3_dagster.defs.portfolio.checks import (
    MEMBERSHIP_ASSET,
    MEMBERSHIP_CHECKS,
    MEMBERSHIP_RAW_ASSET,
    PORTFOLIO_RAW_ASSET,
    PORTFOLIOS_ASSET,
    RAW_ASSET,
    RAW_CHECKS,
    REFINED_ASSET,
    REFINED_CHECKS,
    SECTOR_CHECKS,
    TABLE_ASSET,
    TABLE_CHECKS,
)
from b3_dagster.defs.resources import (
    B3IndicesResource,
    B3PortfolioResource,
    CatalogResource,
    LakeResource,
    RefineEngineResource,
)
from b3_dagster.defs.shared.checks import (
    asset_with_checks,
    check_results,
    combine_outcomes,
    result,
    skipped_metadata,
    specs,
)
from b3_dagster.defs.shared.declarations import raw_asset
from b3_dagster.defs.shared.failures import fails_clearly
from b3_dagster.defs.shared.metadata import BACKFILL_TAG, SINGLE_RUN_NOTE, days_in_run, path, preview, sql_block
from b3_dagster.defs.shared.partitions import GROUP as INDICES_GROUP
from b3_dagster.defs.shared.partitions import portfolio_partitions, trading_day_partitions
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
from b3_dagster.errors import BadInput, Missing, NotReady, RawPartitionMissing
from b3_dagster.model import (
    DATE,
    DEFAULT_INDEX,
    EVENT_FLAG,
    INDEX_CODE,
    LISTING_SEGMENT,
    PART_SUM,
    PORTFOLIO_TABLE,
    RAW_DATE_COLUMN,
    REFINED_SCHEMA,
    SECTOR,
    SHARE_CLASS,
    TICKER_COUNT,
)
from b3_dagster.rules.indices import compare_with_portfolio
from b3_dagster.rules.quality import CheckOutcome, raw_outcomes, refined_matches_raw
from b3_dagster.rules.sector_quality import (
    canonical_sectors_sum_to_100,
    every_ticker_placed,
    portfolio_changes,
    subsector_share_jumps,
)
from b3_dagster.sources.b3_index_csv import split_type
from b3_dagster.storage import staging
from b3_dagster.storage.classification_store import ClassificationStore
from b3_dagster.storage.layout import RAW_PREFIX, raw_prefix
from b3_dagster.storage.portfolio_store import REFINE_DATASET, PortfolioStore, expected_refined
from b3_dagster.storage.tables import (
    INDEX_PORTFOLIOS_TABLE_DEF,
    MEMBERSHIP_TABLE_DEF,
    PORTFOLIO_TABLE_DEF,
    AsOf,
    connect,
    run_query,
)
from b3_dagster.transforms.sector_dimension import SectorDimension, map_sectors

GROUP = "ibov_portfolio"


class RawSnapshotConfig(dg.Config):
    allow_overwrite: bool = Field(
        default=False,
        description="Replace a stored raw partition that holds different data (the old file is archived). Raw is "
                    "the system of record: B3 cannot serve a past portfolio again.",
    )


class RefineConfig(dg.Config):
    processing_date: Optional[str] = Field(
        default=None,
        description="YYYY-MM-DD recorded in data_processamento (dias_desde_carteira counts to it). Default: today "
                    "in America/Sao_Paulo.",
    )


def _today_in_sao_paulo() -> dt.date:
    return pd.Timestamp.now(tz=B3_TIMEZONE).date()


def _fetch_portfolio(context: dg.AssetExecutionContext, b3: B3PortfolioResource, day: dt.date):
    """B3's portfolio of ``day``, or ``dg.Failure`` saying why it cannot be taken now (nothing is written)."""
    client = b3.client(on_page=lambda number, total: context.log.info(
        f"B3 page {number}{f'/{total}' if total else ''} received"))
    snapshot = client.fetch()  # B3Unreachable (a retry may help) or B3ResponseError: see @fails_clearly
    for warning in snapshot.warnings:
        context.log.warning(warning)
    if snapshot.portfolio_date != day:
        hint = ("B3 has not published this session's portfolio yet: run again later the same day"
                if snapshot.portfolio_date < day else
                "B3 already serves a later session's portfolio: this day can no longer be fetched from the API; "
                "import B3's IBOVDia CSV for it instead (b3-dagster import-csv)")
        raise (NotReady if snapshot.portfolio_date < day else Missing)(
            f"B3 served the portfolio of {snapshot.portfolio_date}, not of partition {day}; nothing was "
            f"written. {hint}.", advice="",
            served_date=str(snapshot.portfolio_date), partition=str(day),
        )
    return snapshot


def _quarantine(context: dg.AssetExecutionContext, store, snapshot, verdicts,
                broken: list[str]) -> dg.MaterializeResult:
    """Keep a snapshot that breaks the rules out of raw/ but on disk; the result carries the failing checks."""
    day = snapshot.portfolio_date
    key = store.quarantine_raw(snapshot)
    context.log.error(f"B3's portfolio of {day} breaks {broken}: quarantined at {store.lake.uri(key)}, "
                      "not written to raw/")
    return dg.MaterializeResult(
        metadata={"portfolio_date": str(day), "write_status": "quarantined", "failed_rules": ", ".join(broken),
                  "path": path(store.lake.uri(key)), "dagster/row_count": len(snapshot.rows),
                  "preview": preview(snapshot.rows), **skipped_metadata(verdicts)},
        check_results=check_results(RAW_ASSET, verdicts),
    )


def _stored_result(store, day: dt.date, outcome) -> dg.MaterializeResult:
    """The raw partition as stored, judged by the rules: the checks judge what was written, not what was meant to be."""
    stored = store.read_raw(day)
    stored_verdicts = raw_outcomes([stored])
    written = store.lake.list(outcome.key)
    return dg.MaterializeResult(
        metadata={
            "portfolio_date": str(day),
            "write_status": outcome.status,
            "dagster/row_count": len(stored.rows),
            "sectors": int(stored.rows["segment"].nunique()),
            "path": path(outcome.uri),
            # lets the raw-partition sensor tell this project's writes from files dropped in from outside
            "object_key": outcome.key,
            "object_version": written[0].version if written else "",
            "reductor": stored.reductor if stored.reductor is not None else "n/a",
            "theoretical_qty_total": stored.theoretical_qty_total or 0,
            "archived_previous": outcome.archived_key or "",
            "preview": preview(stored.rows),
            **skipped_metadata(stored_verdicts),
        },
        check_results=check_results(RAW_ASSET, stored_verdicts),
    )


@asset_with_checks(  # not @dg.asset: a skipped check must be left out (defs/portfolio/checks.py)
    key=RAW_ASSET,
    group_name=GROUP,
    partitions_def=trading_day_partitions,
    kinds={"python", "parquet"},
    check_specs=specs(RAW_ASSET, RAW_CHECKS, blocking=True),
    description="B3's IBOV portfolio by sector (GetPortfolioDay, segment 2) for the session, stored as Parquet "
                "under raw/date=YYYY-MM-DD/. B3 serves only the current portfolio: a day must be taken that day.",
)
@fails_clearly
def ibov_raw_snapshot(context: dg.AssetExecutionContext, config: RawSnapshotConfig, b3: B3PortfolioResource,
                      lake: LakeResource) -> Iterator[dg.MaterializeResult]:
    # yielded, not returned: a returned MaterializeResult must carry every declared check, a yielded one may leave a
    # skipped check out (see defs/portfolio/checks.py)
    day = dt.date.fromisoformat(context.partition_key)
    snapshot = _fetch_portfolio(context, b3, day)
    store = lake.portfolio_store()
    verdicts = raw_outcomes([snapshot])
    broken = [name for name, outcome in verdicts if outcome.failed]
    if broken:  # kept out of raw/ (nothing refines it), kept on disk (nothing is lost); the blocking checks fail
        yield _quarantine(context, store, snapshot, verdicts, broken)
        return
    outcome = store.write_raw(snapshot, allow_overwrite=config.allow_overwrite)  # RawPartitionConflict: refused
    context.log.info(f"raw partition {day}: {outcome.status} ({outcome.rows} rows) at {outcome.uri}")
    yield _stored_result(store, day, outcome)


def _day_list(days: list[dt.date], shown: int = 30) -> str:
    text = ", ".join(day.isoformat() for day in days[:shown])
    return (f"{len(days)}: {text}" + (f" ... (+{len(days) - shown})" if len(days) > shown else "")) if days else "none"


def _days_with_raw(context: dg.AssetExecutionContext, store) -> tuple[list[dt.date], list[dt.date]]:
    """The run's days that have raw, and those that do not (skipped, named in the log). A range over sessions that
    were never taken refines the days it can; it fails, with a ``dg.Failure``, only when no day has raw."""
    days = [dt.date.fromisoformat(key) for key in days_in_run(context)]
    stored = set(store.raw_days())
    present = [day for day in days if day in stored]
    skipped = [day for day in days if day not in stored]
    if not present:
        raise RawPartitionMissing(
            f"none of the run's {len(days)} day(s) ({days[0]}..{days[-1]}) has a raw portfolio in "
            f"{store.lake.uri(RAW_PREFIX)}: nothing to refine. Take them with ibov_raw_snapshot (the day "
            "itself) or import B3's IBOVDia CSV downloads (b3-dagster import-csv).", advice="", days=len(days))
    if skipped:
        context.log.info(f"{len(skipped)} day(s) of the run have no raw portfolio and are skipped: "
                         f"{_day_list(skipped, shown=200)}")
    return present, skipped


@refine_and_commit_asset(
    refined=dg.AssetSpec(
        REFINED_ASSET,
        group_name=GROUP,
        deps=[RAW_ASSET],
        kinds={"sql", "parquet"},  # the engine (DuckDB or Glue) is chosen at run time: the metadata's `engine` names it
        description="Sector aggregation of the raw portfolio (seed 000's Glue job) on B3's own classification: each "
                    "raw row is placed in its canonical sector (setor_economico, subsetor, Setor = the stable label; "
                    "README, \"The sector dimension\"), then part, tickers and theoretical quantity are summed per "
                    "Setor and Data, by DuckDB in process or by the Glue Spark job, into the run's staging folder "
                    "(staging/ibov_sector_refined/<run id>/); the same step commits it to tb_ibov_refined. Only the "
                    "days of the run that have raw are refined and marked materialised; the others are named in the "
                    "metadata (`skipped_days`) and the log (in a backfill, recorded with no rows so that it "
                    "completes), and the run fails only when no day has raw."
                    + SINGLE_RUN_NOTE,
    ),
    table=dg.AssetSpec(
        TABLE_ASSET,
        group_name=GROUP,
        deps=[REFINED_ASSET],
        description="default.tb_ibov_refined, an Apache Iceberg table (SQLite catalog locally, Glue Data Catalog on "
                    "AWS, queried natively by Athena): one row per canonical Setor (with setor_economico, subsetor) "
                    "and Data. The run's staged days replace the table's rows of those days in ONE commit, in the "
                    "refine's step (ibov_sector_refined). A day that has raw but is absent, empty or partial in "
                    "staging is refused, never deleted." + SINGLE_RUN_NOTE,
    ),
    check_specs=[*specs(REFINED_ASSET, {**REFINED_CHECKS, **SECTOR_CHECKS}), *specs(TABLE_ASSET, TABLE_CHECKS)],
    partitions_def=trading_day_partitions,
)
@fails_clearly
def sector_refine_and_commit(context: dg.AssetExecutionContext, config: RefineConfig, lake: LakeResource,
                             refine_engine: RefineEngineResource, catalog: CatalogResource) -> Iterator:
    store = lake.portfolio_store()
    days, skipped_days = _days_with_raw(context, store)
    if selected(context, REFINED_ASSET):
        yield from _refine(context, config, store, refine_engine, days, skipped_days)
    if selected(context, TABLE_ASSET):
        yield from _commit(context, catalog, days, skipped_days)


def _refine(context: dg.AssetExecutionContext, config: RefineConfig, store, refine_engine, days: list[dt.date],
            skipped_days: list[dt.date]) -> Iterator:
    """The days' sector rows into the run's staging folder; one materialisation per day, then the checks."""
    processing_date = (dt.date.fromisoformat(config.processing_date) if config.processing_date
                       else _today_in_sao_paulo())
    raw_rows = _raw_rows_within_rules(store, days)
    dimension, mapping = _sector_mapping(context, store, raw_rows)
    prefix = staging.run_prefix(REFINE_DATASET, context.run.run_id)
    staging.remove(store.lake, prefix)  # a retried step starts from an empty staging folder
    context.log.info(f"refining {len(days)} day(s) on the {refine_engine.kind} engine into {store.lake.uri(prefix)}")
    refine_engine.refine(context, store, days, processing_date, prefix, raw_rows, mapping.rows)
    # last: says the refine finished. A ticker the mapping could not place leaves its day short of raw's ticker
    # count, so the table commit refuses that day (and every_ticker_placed names the ticker)
    staging.write_expected(store.lake, prefix, expected_refined(raw_rows, mapping.rows))
    # the checks judge what was staged, read back from the lake
    refined_rows = staging.read_rows(store.lake, prefix, REFINED_SCHEMA).to_pandas(date_as_object=True)
    shares = refined_rows[[DATE, SECTOR, PART_SUM]]
    verdicts = [*refined_matches_raw(raw_rows, refined_rows, mapping=mapping.rows),
                ("canonical_sectors_sum_to_100", canonical_sectors_sum_to_100(shares)),
                ("every_ticker_placed", every_ticker_placed(mapping, raw_rows)),
                ("subsector_share_jumps", subsector_share_jumps(shares, changed_days=portfolio_changes(raw_rows)))]
    run = {
        "days": len(days),
        "first_day": str(days[0]),
        "last_day": str(days[-1]),
        "skipped_days": _day_list(skipped_days),
        "classification_vintages": len(dimension.vintages) + len(dimension.fallback),
        "engine": refine_engine.kind,
        "processing_date": str(processing_date),
        "staging": path(store.lake.uri(prefix)),
        **skipped_metadata(verdicts),
    }
    yield from partition_materialisations(REFINED_ASSET, run, {
        day.isoformat(): {
            "dagster/row_count": len(rows),
            "sectors": int(rows[SECTOR].nunique()),
            "raw_path": path(store.lake.uri(raw_prefix(day))),
            "preview": preview(rows.sort_values(PART_SUM, ascending=False)),
        } for day, rows in _rows_by_day(refined_rows, days).items()}
        | _skipped_in_a_backfill(context, skipped_days))
    yield from check_results(REFINED_ASSET, verdicts)


def _rows_by_day(rows: pd.DataFrame, days: list[dt.date]) -> dict[dt.date, pd.DataFrame]:
    """The rows (refined: staged or committed) of each day of the run; no rows for a day that has none."""
    by_day = dict(tuple(rows.groupby(DATE)))
    return {day: by_day.get(day, rows.iloc[:0]) for day in days}


def _skipped_in_a_backfill(context: dg.AssetExecutionContext, skipped_days: list[dt.date]) -> dict[str, dict]:
    """In a backfill only: the run's sessions without raw, as materialisations of no rows that say so. Dagster's
    backfill daemon counts a targeted partition that a finished run left unmaterialised as failed: the backfill would
    end "completed with failures" and never run the assets below (the sector charts). Elsewhere (the sensor's range
    runs, the demo, a run launched by hand) they stay unmaterialised, named in `skipped_days`."""
    if BACKFILL_TAG not in context.run.tags:
        return {}
    return {day.isoformat(): {"dagster/row_count": 0, "skipped": "no raw portfolio of this session: nothing refined "
                                                                 "or committed (a session never taken or imported)"}
            for day in skipped_days}


def _raw_rows_within_rules(store, days: list[dt.date]) -> pd.DataFrame:
    """The raw rows of ``days``; refused, naming each day and rule, when any day breaks the data-quality rules."""
    snapshots = [store.read_raw(day) for day in days]
    broken = {}
    if any(outcome.failed for _, outcome in raw_outcomes(snapshots)):  # the rules run over all days at once;
        broken = {str(s.portfolio_date): [name for name, o in raw_outcomes([s]) if o.failed] for s in snapshots}
        broken = {day: names for day, names in broken.items() if names}  # day by day only to name the culprits
    if broken:  # e.g. a file dropped into raw/ from outside that B3's own totals contradict
        raise BadInput(f"raw partitions break the data-quality rules ({broken}); nothing was refined. "
                       "Replace them (allow_overwrite, or b3-dagster import-csv --allow-overwrite).", advice="")
    return pd.concat([s.rows for s in snapshots], ignore_index=True)


def _sector_mapping(context: dg.AssetExecutionContext, store, raw_rows: pd.DataFrame):
    """B3's classification in the lake -> the sector dimension, and each raw row placed in its canonical sector."""
    classification, classification_errors = ClassificationStore(store.lake).history()
    for error in classification_errors:  # a workbook dropped into the lake that cannot be used: named, not fatal
        context.log.warning(f"classification file not used: {error}")
    dimension = SectorDimension.from_classification(classification)
    mapping = map_sectors(raw_rows, dimension)
    for note in mapping.notes:
        context.log.info(note)
    return dimension, mapping


def _table_answers(connection, days: list[dt.date], expected: pd.DataFrame) -> CheckOutcome:
    listed = ", ".join(f"DATE '{day.isoformat()}'" for day in days)
    sql = (f"SELECT {DATE}, COUNT(*) AS sectors, SUM({TICKER_COUNT}) AS tickers, SUM({PART_SUM}) AS part "
           f"FROM default.{PORTFOLIO_TABLE} WHERE {DATE} IN ({listed}) GROUP BY {DATE}")
    answer = run_query(connection, sql)
    expected_sectors = expected.groupby(DATE)[SECTOR].count()
    if answer.empty:
        return CheckOutcome(False, f"the table returned no rows for {len(days)} day(s) just committed", {"sql": sql})
    answer[DATE] = pd.to_datetime(answer[DATE]).dt.date
    got = answer.set_index(DATE)["sectors"]
    mismatched = [str(day) for day in days if int(got.get(day, 0)) != int(expected_sectors.get(day, -1))]
    return CheckOutcome(not mismatched,
                        "the table answers with every sector of the committed day(s)" if not mismatched
                        else f"the table disagrees with the staged rows on {mismatched[:5]}",
                        {"sql": sql, "days_answered": len(got), "tickers": int(answer["tickers"].sum())})


def _commit(context: dg.AssetExecutionContext, catalog: CatalogResource, days: list[dt.date],
            skipped_days: list[dt.date]) -> Iterator:
    """The run's staged days into tb_ibov_refined in one commit; one materialisation per day, then the check."""
    tables = catalog.tables()
    outcome = commit_run(context, tables, PORTFOLIO_TABLE_DEF, REFINE_DATASET, [day.isoformat() for day in days])
    context.log.info(f"committed {len(days)} day(s), {outcome.rows} rows to {tables.description}: snapshot "
                     f"{outcome.snapshot_id}")
    connection = connect(tables, AsOf(snapshot_id=outcome.snapshot_id), table_defs=[PORTFOLIO_TABLE_DEF])
    committed = run_query(connection, f"SELECT * FROM default.{PORTFOLIO_TABLE} WHERE {DATE} IN "
                                      f"({', '.join(repr(day.isoformat()) for day in days)})")
    committed[DATE] = pd.to_datetime(committed[DATE]).dt.date
    answers = _table_answers(connection, days, committed)
    run = {"table": f"default.{PORTFOLIO_TABLE}", **snapshot_metadata(tables, PORTFOLIO_TABLE_DEF, outcome),
           "days": len(days), "skipped_days": _day_list(skipped_days)}
    yield from partition_materialisations(TABLE_ASSET, run, {
        day.isoformat(): {
            "dagster/row_count": len(rows),
            "participation_by_sector": preview(rows[[SECTOR, PART_SUM]].rename(columns={PART_SUM: "total_part"})
                                               .sort_values("total_part", ascending=False), rows=40),
            "query": sql_block(f"SELECT {SECTOR}, SUM({PART_SUM}) AS total_part FROM default.{PORTFOLIO_TABLE} "
                               f"WHERE {DATE} = DATE '{day.isoformat()}' GROUP BY {SECTOR} ORDER BY total_part DESC"),
        } for day, rows in _rows_by_day(committed, days).items()}
        | _skipped_in_a_backfill(context, skipped_days))
    yield result(TABLE_ASSET, "table_answers_query", answers)


portfolio_assets = [ibov_raw_snapshot, sector_refine_and_commit]


# ---- membership -----------------------------------------------------------------------------------------------------
@raw_asset(
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
    written, _ = indices_store(lake).write_membership(body, answer.source)
    if answer.update.isoformat() != context.partition_key:
        context.log.info(f"B3's membership list of {answer.update} answered for session {context.partition_key}: "
                         "kept under its own update day")
    return dg.MaterializeResult(metadata={
        "update": answer.update.isoformat(), "securities": answer.securities, "indices": len(answer.indices()),
        "memberships": len(answer.membership), "status": written.status, "location": path(written.uri),
        "dagster/row_count": len(answer.membership),
    })


def _portfolios_by_day(lake: LakeResource, days: list[dt.date]) -> dict[tuple[str, dt.date], set[str]]:
    """Codes of every stored portfolio of ``days``: IBOV's raw days (GetPortfolioDay, IBOVDia imports) and every
    index's imported Carteira do Dia."""
    found: dict[tuple[str, dt.date], set[str]] = {}
    ibov = PortfolioStore(lake.lake())
    for day in sorted(set(ibov.raw_days()) & set(days)):
        found[(DEFAULT_INDEX, day)] = set(ibov.read_raw(day).rows["cod"])
    rows, _ = indices_store(lake).portfolios()
    for (index, day), codes in rows.groupby([INDEX_CODE, RAW_DATE_COLUMN])["cod"]:
        found.setdefault((index, day), set(codes))
    return found


@table_asset(
    decorator=asset_with_checks,
    key=MEMBERSHIP_ASSET,
    group_name=INDICES_GROUP,  # every B3 index's assets (README, group b3_indices)
    deps=[MEMBERSHIP_RAW_ASSET],
    check_specs=specs(MEMBERSHIP_ASSET, MEMBERSHIP_CHECKS),
    description="b3_refined_db.index_membership: one row per (update day, security, index it belongs to), from "
                "every stored GetStockIndex answer; replaced per update day in one commit.",
)
@fails_clearly
def index_membership(context: dg.AssetExecutionContext, lake: LakeResource,
                     catalog: CatalogResource) -> Iterator[dg.MaterializeResult]:
    store = indices_store(lake)
    days = store.membership_days()
    if not days:
        raise Missing(f"no GetStockIndex answer stored: materialise {MEMBERSHIP_RAW_ASSET} first")
    answers = [store.read_membership(day) for day in days]
    rows = pd.concat([answer.membership for answer in answers], ignore_index=True)
    committed = commit_rows(catalog.tables(), MEMBERSHIP_TABLE_DEF, rows, [d.isoformat() for d in days], context)
    portfolios = _portfolios_by_day(lake, days)
    compared = [compare_with_portfolio(answer, index, portfolios[(index, answer.update)], answer.update)
                for answer in answers for index in answer.indices() if (index, answer.update) in portfolios]
    verdict = combine_outcomes("membership", compared) if compared else CheckOutcome.skip(
        f"no stored portfolio of any index on the membership days {[d.isoformat() for d in days]}")
    verdicts = [("membership_matches_portfolios", verdict)]
    yield dg.MaterializeResult(
        metadata={**committed, "update_days": ", ".join(d.isoformat() for d in days),
                  "compared": dg.MetadataValue.md("\n".join(f"- {o.description}" for o in compared) or "none"),
                  **skipped_metadata(verdicts)},
        check_results=check_results(MEMBERSHIP_ASSET, verdicts),
    )


@raw_asset(
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
    written = indices_store(lake).write_api_portfolio(index, rows, snapshot.source or client.page_url(1))
    return dg.MaterializeResult(metadata={"index": index, "day": day.isoformat(), "tickers": len(rows),
                                          "status": written.status, "location": path(written.uri),
                                          "dagster/row_count": len(rows)})


@table_asset(
    key=PORTFOLIOS_ASSET,
    group_name=INDICES_GROUP,  # every B3 index's assets (README, group b3_indices)
    deps=[PORTFOLIO_RAW_ASSET],
    description="b3_refined_db.index_portfolios: one row per (index, day, ticker) of every stored Carteira do Dia "
                "portfolio of any index (b3-dagster import-index-csv), with B3's Tipo split into share class, event "
                "flag and listing segment. Replaced per index in one commit. tb_ibov_refined stays IBOV by sector.",
)
@fails_clearly
def index_portfolios(context: dg.AssetExecutionContext, lake: LakeResource,
                     catalog: CatalogResource) -> dg.MaterializeResult:
    rows, parsed = indices_store(lake).portfolios()
    if rows.empty:
        raise Missing("no portfolio of any index stored: run b3-dagster import-index-csv first")
    committed = commit_rows(catalog.tables(), INDEX_PORTFOLIOS_TABLE_DEF, rows, sorted(set(rows[INDEX_CODE])), context)
    days = rows.groupby(INDEX_CODE)[RAW_DATE_COLUMN].agg(["min", "max", "nunique"]).reset_index()
    altered = [p.source for p in parsed if p.alterations]
    return dg.MaterializeResult(metadata={
        **committed, "indices": ", ".join(sorted(set(rows[INDEX_CODE]))), "by_index": preview(days.astype(str)),
        "altered_copies": dg.MetadataValue.md("\n".join(f"- {a}" for a in altered) or "none"),
    })
