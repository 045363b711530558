"""Benchmark: a year of B3 sessions from raw to the Iceberg table, beside the seeds' pandas path and the DuckDB limit;
then five years, seed 000's queries on them and a time-travel query.

    .venv/bin/python benchmarks/backfill.py               # 250 sessions side by side, then 1,250 sessions
    .venv/bin/python benchmarks/backfill.py --days 250 --years-days 0   # only the side-by-side part

B3 serves only today's portfolio, so the raw days are the recorded 2025-04-07 answer re-dated to consecutive sessions
(same 87 rows; synthetic dates, real rows), written through the store the CSV import uses. All three paths start from
the same raw Parquet files in the lake (the HTTP fetch is left out of all three):

- backfill: ``ibov_refine_job`` as one run over the range (BackfillPolicy.single_run), in process: raw read and
  checked, refined by DuckDB into staging, committed to the Iceberg table in one commit, table checks;
- pandas (the seeds' path): per day, pandas reads the raw file, aggregates by sector and writes
  ``to_parquet(partition_cols=["Data", "Setor"])``, as seed 000's job wrote its refined folders;
- DuckDB COPY (the limit): one ``COPY (<the refine SQL over every raw file>) TO 'x.parquet'``.

Prints wall-clock seconds; nothing is asserted (speed lives here, not in the tests).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def seed_raw(lake_root: Path, days: list[dt.date]) -> float:
    from b3_dagster.model import PortfolioSnapshot
    from b3_dagster.replay.b3_api import recorded_days
    from b3_dagster.sources.b3_portfolio import parse_page, rows_to_frame
    from b3_dagster.storage.lake import LocalLake
    from b3_dagster.storage.portfolio_store import PortfolioStore

    recording = [r for r in recorded_days() if r.date == "2025-04-07"][0]
    page = parse_page(recording.path.read_bytes(), page=1, language=recording.language)
    base = PortfolioSnapshot(page.portfolio_date, rows_to_frame(page.rows), page.reductor, page.theoretical_qty_total,
                             source="benchmark: 2025-04-07 recording re-dated")
    store = PortfolioStore(LocalLake(lake_root))
    started = time.perf_counter()
    for day in days:
        rows = base.rows.copy()
        rows["DataCarteira"] = day
        store.write_raw(dataclasses.replace(base, portfolio_date=day, rows=rows))
    # a lake that has refined once keeps the parses of B3's shipped classification workbooks (a one-off ~0.7 s, not
    # a per-run cost): the timed runs start from such a lake, as every run after a lake's first does
    from b3_dagster.storage.classification_store import ClassificationStore

    ClassificationStore(store.lake).history()
    return time.perf_counter() - started


def backfill(lake_root: Path, days: list[dt.date], instance_storage: str = "memory") -> float:
    """raw -> refine (staging) -> one Iceberg commit, as one Dagster run over the range. ``instance_storage``:
    ``memory`` (an ephemeral instance: the pipeline's own cost) or ``sqlite`` (a DAGSTER_HOME-like instance, which
    also records one materialisation event per partition and asset in its SQLite event log)."""
    import dagster as dg

    from b3_dagster.definitions import build_definitions
    from b3_dagster.defs.shared.metadata import PARTITION_RANGE_END_TAG as RANGE_END
    from b3_dagster.defs.shared.metadata import PARTITION_RANGE_START_TAG as RANGE_START
    from b3_dagster.defs.resources import CatalogResource, LakeResource

    lake = LakeResource(root=str(lake_root))
    defs = build_definitions({"lake": lake, "catalog": CatalogResource(lake=lake)})
    job = defs.resolve_job_def("ibov_refine_job")
    config = {**QUIET, "ops": {"ibov_sector_refined": {"config": {"processing_date": "2026-01-02"}}}}
    with (dg.instance_for_test() if instance_storage == "sqlite" else dg.DagsterInstance.ephemeral()) as instance:
        started = time.perf_counter()
        result = job.execute_in_process(instance=instance, run_config=config, tags={
            RANGE_START: days[0].isoformat(), RANGE_END: days[-1].isoformat()})
        seconds = time.perf_counter() - started
    assert result.success
    return seconds


def pandas_path(lake_root: Path, days: list[dt.date], out: Path) -> float:
    """Seed 000's shape: one day at a time, pandas groupby, Hive folders per Data and Setor."""
    import pandas as pd

    started = time.perf_counter()
    for day in days:
        raw = pd.read_parquet(lake_root / f"raw/date={day.isoformat()}/ibov_setor.parquet")
        refined = (raw.groupby(["segment", "DataCarteira"], as_index=False)
                   .agg(soma_part=("part", "sum"), total_codigo=("cod", "count"),
                        soma_qtd_teorica=("theoricalQty", "sum"))
                   .rename(columns={"segment": "Setor", "DataCarteira": "Data"}))
        refined["data_processamento"] = dt.date(2026, 1, 2)
        refined["dias_desde_carteira"] = (pd.Timestamp("2026-01-02") - pd.to_datetime(refined["Data"])).dt.days
        refined["Data"] = refined["Data"].astype(str)
        refined.to_parquet(out, partition_cols=["Data", "Setor"], index=False)
    return time.perf_counter() - started


def duckdb_copy(lake_root: Path, out: Path) -> float:
    import duckdb

    from b3_dagster.transforms.sector_refine import MAPPING_VIEW, mapping_table, refine_sql, shipped_sector_mapping

    source = f"read_parquet('{lake_root}/raw/date=*/*.parquet')"
    connection = duckdb.connect()
    # the sector mapping is the same input for every engine compared here: made before the clock starts
    raw = connection.sql(f"SELECT * FROM {source}").to_arrow_table().to_pandas(date_as_object=True)
    mapping = mapping_table(shipped_sector_mapping(raw))
    connection.register(MAPPING_VIEW, mapping)
    started = time.perf_counter()
    connection.sql(f"COPY ({refine_sql(dt.date(2026, 1, 2), source=source)}) TO '{out}' (FORMAT parquet)")
    return time.perf_counter() - started


def timed(function, repeat: int = 5) -> float:
    """Median wall-clock milliseconds of ``repeat`` calls (after one warm-up call)."""
    function()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def queries(lake_root: Path) -> None:
    from b3_dagster import connect
    from b3_dagster.cli import SEED_000_QUERIES
    from b3_dagster.storage.lake import LocalLake
    from b3_dagster.storage.tables import PORTFOLIO_TABLE_DEF, AsOf, open_tables, run_query

    tables = open_tables(LocalLake(lake_root))
    first = tables.snapshots(PORTFOLIO_TABLE_DEF)[0]
    connection = connect(str(lake_root))
    print(f"  connect() (scan of the current snapshot into DuckDB): {timed(lambda: connect(str(lake_root))):6.0f} ms")
    for title, sql in SEED_000_QUERIES.items():
        print(f"  seed 000 {title!r:32s} on the open connection: {timed(lambda: run_query(connection, sql)):6.1f} ms")
    travel = "SELECT COUNT(*) AS n FROM default.tb_ibov_refined"
    as_of = AsOf(snapshot_id=first["snapshot_id"])
    from b3_dagster.storage.tables import connect as connect_tables

    print(f"  time travel (connect as of the first snapshot + query): "
          f"{timed(lambda: run_query(connect_tables(tables, as_of, table_defs=[PORTFOLIO_TABLE_DEF]), travel)):6.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=250, help="sessions for the side-by-side part (250 = a year)")
    parser.add_argument("--years-days", type=int, default=1250, help="sessions for the 5-year part (0: skip it)")
    parser.add_argument("--end", default="2025-12-30", help="last session")
    parser.add_argument("--years-backfill", action="store_true",
                        help="also time the 5-year build as one Dagster run (slow: Dagster records an event per "
                             "partition and asset)")
    parser.add_argument("--sqlite-instance", action="store_true",
                        help="also time the backfill on a SQLite-backed Dagster instance (like dagster dev's)")
    args = parser.parse_args()

    from b3_dagster.calendar import sessions

    end = dt.date.fromisoformat(args.end)
    days = sessions(end - dt.timedelta(days=3 * args.days), end)[-args.days:]
    print(f"{len(days)} B3 sessions {days[0]}..{days[-1]} (87 tickers/day, ~30 sectors/day), same raw files for all")
    with tempfile.TemporaryDirectory() as tmp:
        lake_root = Path(tmp) / "lake"
        seed_raw(lake_root, days)
        seconds = backfill(lake_root, days)
        files = sum(1 for _ in (lake_root / "warehouse").rglob("*.parquet"))
        print(f"  single-run backfill raw -> Iceberg table: {seconds:6.2f} s  ({files} table data files; "
              "ephemeral Dagster instance)")
        if args.sqlite_instance:
            seconds = backfill(lake_root, days, "sqlite")
            print(f"  the same, instance on SQLite (event log):   {seconds:6.2f} s  (Dagster records "
                  f"{2 * len(days)} materialisations)")
        seconds = pandas_path(lake_root, days, Path(tmp) / "pandas")
        files = sum(1 for _ in (Path(tmp) / "pandas").rglob("*.parquet"))
        print(f"  seeds' pandas path (to_parquet by Data/Setor): {seconds:6.2f} s  ({files} files)")
        print(f"  one DuckDB COPY of the same aggregate:     {duckdb_copy(lake_root, Path(tmp) / 'copy.parquet'):6.2f} s")

    if args.years_days:
        days = sessions(end - dt.timedelta(days=3 * args.years_days), end)[-args.years_days:]
        with tempfile.TemporaryDirectory() as tmp:
            lake_root = Path(tmp) / "lake"
            seed_raw(lake_root, days)
            print(f"\n{len(days)} sessions {days[0]}..{days[-1]} from raw:")
            from b3_dagster.storage.lake import LocalLake
            from b3_dagster.storage.rebuild import rebuild_portfolio_table
            from b3_dagster.storage.tables import open_tables

            started = time.perf_counter()
            rebuild_portfolio_table(open_tables(LocalLake(lake_root)), dt.date(2026, 1, 2))
            print(f"  b3-dagster rebuild-tables (refine + one commit, no Dagster run): "
                  f"{time.perf_counter() - started:6.2f} s")
            if args.years_backfill:
                seconds = backfill(lake_root, days)
                print(f"  single-run backfill through Dagster (ephemeral instance):      {seconds:6.2f} s")
            backfill(lake_root, days[-5:])  # a second snapshot: the first one is then history
            queries(lake_root)


if __name__ == "__main__":
    import os

    os.environ.setdefault("B3_PARTITIONS_START", "2020-01-02")  # the 5-year range starts before the default 2022
    main()
