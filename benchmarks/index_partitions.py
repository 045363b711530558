"""Benchmark: 5 indices × 250 B3 sessions as one MultiPartitionsDefinition(index × day) asset vs one daily asset per
index, with single-run backfills. Trivial asset bodies: the figures are Dagster's own cost per partition key.

    .venv/bin/python benchmarks/index_partitions.py            # both layouts
    .venv/bin/python benchmarks/index_partitions.py --layout multi

Prints wall-clock seconds; nothing is asserted. Measured on the shared 2-core machine (2026-11-30, Dagster 1.13.27):
multi 97 s and 117 s, per-index 115 s and 133 s (two rounds) for 5 single runs of 250 keys; noisy (other
sessions were running).
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time

import dagster as dg  # a benchmark of Dagster itself (module scope: asset annotations are resolved by name)

INDICES = ["IBOV", "IBXX", "IBRA", "SMLL", "IDIV"]
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def definitions():
    from b3_dagster.calendar import B3_TIMEZONE, weekday_holidays

    holidays = [dt.datetime.combine(day, dt.time()) for day in weekday_holidays("2025-01-02", "2025-12-31")]
    daily = dg.DailyPartitionsDefinition(start_date="2025-01-02", end_date="2026-01-01", timezone=B3_TIMEZONE,
                                         exclusions=["0 0 * * 6", "0 0 * * 0", *holidays])
    multi = dg.MultiPartitionsDefinition({"dia": daily, "indice": dg.StaticPartitionsDefinition(INDICES)})

    @dg.asset(partitions_def=multi, backfill_policy=dg.BackfillPolicy.single_run())
    def portfolio_all_indices(context):
        return dg.MaterializeResult(metadata={"keys": len(context.partition_keys)})

    assets, jobs = [portfolio_all_indices], [dg.define_asset_job("multi", selection=["portfolio_all_indices"])]
    for index in INDICES:
        name = f"portfolio_{index.lower()}"

        @dg.asset(name=name, partitions_def=daily, backfill_policy=dg.BackfillPolicy.single_run())
        def _one(context):
            return dg.MaterializeResult(metadata={"keys": len(context.partition_keys)})

        assets.append(_one)
        jobs.append(dg.define_asset_job(f"job_{index.lower()}", selection=[name]))
    return dg.Definitions(assets=assets, jobs=jobs), multi


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layout", choices=["multi", "per-index", "both"], default="both")
    layout = parser.parse_args().layout

    defs, multi = definitions()
    started = time.perf_counter()
    keys = multi.get_partition_keys()
    print(f"multi: {len(keys)} keys enumerated in {time.perf_counter() - started:.3f} s")
    with tempfile.TemporaryDirectory() as home:
        instance = dg.DagsterInstance.local_temp(home)
        if layout in ("multi", "both"):
            started = time.perf_counter()
            for index in INDICES:
                assert defs.resolve_job_def("multi").execute_in_process(instance=instance, run_config=QUIET, tags={
                    RANGE_START: f"2025-01-02|{index}", RANGE_END: f"2025-12-30|{index}"}).success
            print(f"multi (index × day): 5 single runs of 250 keys: {time.perf_counter() - started:.1f} s")
        if layout in ("per-index", "both"):
            started = time.perf_counter()
            for index in INDICES:
                assert defs.resolve_job_def(f"job_{index.lower()}").execute_in_process(
                    instance=instance, run_config=QUIET,
                    tags={RANGE_START: "2025-01-02", RANGE_END: "2025-12-30"}).success
            print(f"one asset per index: 5 single runs of 250 keys: {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
