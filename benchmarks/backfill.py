"""Benchmark: a backfill of N B3 sessions through raw -> refined -> tb_ibov_refined, one run vs one run per day.

    .venv/bin/python benchmarks/backfill.py --days 250

B3 serves only today's portfolio, so the N raw days are the recorded 2025-04-07 answer re-dated to N consecutive
sessions (same 87 rows; synthetic dates, real rows) and written through the same store the CSV import uses. Prints
wall-clock seconds; nothing is asserted (speed lives here, not in the tests).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import tempfile
import time
from pathlib import Path

QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def seed_raw(lake_root: Path, days: list[dt.date]) -> float:
    from b3_dagster.model import PortfolioSnapshot
    from b3_dagster.replay import recorded_days
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
    return time.perf_counter() - started


def run_refine(defs, instance, days: list[dt.date], single_run: bool) -> tuple[float, int]:
    from b3_dagster.defs.metadata import PARTITION_RANGE_END_TAG as RANGE_END
    from b3_dagster.defs.metadata import PARTITION_RANGE_START_TAG as RANGE_START

    job = defs.resolve_job_def("ibov_refine_job")
    config = {**QUIET, "ops": {"ibov_sector_refined": {"config": {"processing_date": "2026-01-02"}}}}
    started = time.perf_counter()
    if single_run:
        result = job.execute_in_process(instance=instance, run_config=config, tags={
            RANGE_START: days[0].isoformat(), RANGE_END: days[-1].isoformat()})
        assert result.success
        runs = 1
    else:
        for day in days:
            assert job.execute_in_process(instance=instance, run_config=config, partition_key=day.isoformat()).success
        runs = len(days)
    return time.perf_counter() - started, runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=250, help="sessions to backfill (250 = one B3 year)")
    parser.add_argument("--per-partition-days", type=int, default=None,
                        help="sessions for the one-run-per-day variant (default: same as --days)")
    parser.add_argument("--end", default="2025-12-30", help="last session of the backfill")
    args = parser.parse_args()

    import dagster as dg

    from b3_dagster.calendar import sessions
    from b3_dagster.definitions import build_definitions
    from b3_dagster.defs.resources import CatalogResource, LakeResource
    from b3_dagster.storage.catalog import DuckDBCatalog

    end = dt.date.fromisoformat(args.end)
    all_days = sessions(end - dt.timedelta(days=3 * args.days), end)[-args.days:]
    per_partition = all_days[-(args.per_partition_days or args.days):]
    print(f"backfill of {len(all_days)} B3 sessions {all_days[0]}..{all_days[-1]} (87 tickers/day, ~30 sectors/day)")

    for label, days, single in (("single run (BackfillPolicy.single_run)", all_days, True),
                                ("one run per partition", per_partition, False)):
        with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test() as instance:
            lake_root = Path(tmp)
            seconds_raw = seed_raw(lake_root, days)
            lake = LakeResource(root=str(lake_root))
            defs = build_definitions({"lake": lake, "catalog": CatalogResource(lake=lake, kind="duckdb")})
            seconds, runs = run_refine(defs, instance, days, single)
            rows = DuckDBCatalog(lake_root / "catalog.duckdb").query(
                "SELECT COUNT(*) AS n FROM default.tb_ibov_refined")["n"].iloc[0]
            files = sum(1 for _ in (lake_root / "refined").rglob("*.parquet"))
            print(f"{label:42s} days={len(days):4d} runs={runs:4d} raw_write={seconds_raw:6.1f}s "
                  f"refine+table={seconds:7.1f}s ({seconds / len(days) * 1000:6.0f} ms/day) "
                  f"table_rows={rows} refined_files={files}")


if __name__ == "__main__":
    os.environ.setdefault("B3_LAKE_ROOT", "data")
    main()
