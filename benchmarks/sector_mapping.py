"""Benchmark: parse the shipped classification vintages, then map N sessions of raw rows to canonical sectors.

    .venv/bin/python benchmarks/sector_mapping.py --days 1246

The N raw days are the real by-sector download of 2024-07-26 re-dated to N consecutive sessions from 2021-07-01
(synthetic dates, real rows), so every vintage rule (valid, nearest) is exercised. Prints wall-clock seconds beside the
baseline measured on the 2-core development machine; nothing is asserted.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

# Measured 2026-11-30 (2 shared cores): parse 12 vintages ~0.8 s; map 1246 sessions (107k rows) 1.8 s
# (9.3 s before map_sectors grouped plain lists instead of pandas groups).
BASELINE = {"parse_vintages_s": 0.8, "map_1246_sessions_s": 1.8}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=1246)
    args = parser.parse_args()

    import pandas as pd

    from b3_dagster.calendar import sessions
    from b3_dagster.sources.b3_classification import load_shipped_classification
    from b3_dagster.sources.b3_csv import parse_ibov_csv
    from b3_dagster.transforms.sector_dimension import SectorDimension, map_sectors

    start = time.perf_counter()
    dimension = SectorDimension.from_classification(load_shipped_classification())
    parsed = time.perf_counter() - start

    source = Path(__file__).resolve().parents[1] / "b3_dagster" / "recordings" / "b3_csv" / "IBOVDia_26-07-24.csv"
    base = parse_ibov_csv(source.read_bytes(), source.name).rows
    days = sessions("2021-07-01", "2027-12-31")[: args.days]
    raw = pd.concat([base.assign(DataCarteira=day) for day in days], ignore_index=True)
    start = time.perf_counter()
    mapping = map_sectors(raw, dimension)
    mapped = time.perf_counter() - start
    print(f"parse 12 vintages: {parsed:.2f} s (baseline {BASELINE['parse_vintages_s']} s)")
    print(f"map {len(days)} sessions, {len(raw)} rows: {mapped:.2f} s (baseline {BASELINE['map_1246_sessions_s']} s "
          f"for 1246); problems {len(mapping.problems)}")


if __name__ == "__main__":
    main()
