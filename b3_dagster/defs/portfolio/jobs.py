"""Jobs of the portfolio pipeline."""

from b3_dagster.defs.portfolio.assets import (
    ibov_raw_snapshot,
    index_membership,
    index_membership_raw,
    index_portfolio_raw,
    index_portfolios,
    sector_refine_and_commit,
)
from b3_dagster.defs.shared.declarations import asset_job

# No job mixes the snapshot (one B3 call per day: one run per day) with the refine and table (single-run
# backfills): Dagster would warn and fall back to one run per day for all three. The schedule runs
# ibov_snapshot_job (defs/automation/schedules.py); the raw sensor then runs ibov_refine_job over the new days.
refine_job = asset_job(
    "ibov_refine_job",
    [sector_refine_and_commit],
    "Refine raw partitions that are already in the lake and update tb_ibov_refined.",
)


membership_job = asset_job("index_membership_job", [index_membership_raw],
                             "Keep B3's GetStockIndex answer of the session.")
membership_table_job = asset_job("index_membership_table_job", [index_membership],
                                   "Rebuild b3_refined_db.index_membership and compare it with the portfolios of "
                                   "the same days.")
index_portfolio_raw_job = asset_job("index_portfolio_raw_job", [index_portfolio_raw],
                                      "Fetch the selected (session, index) portfolios from B3's GetPortfolioDay.")
index_portfolios_job = asset_job("index_portfolios_job", [index_portfolios],
                                   "Rebuild b3_refined_db.index_portfolios from every stored Carteira do Dia.")


snapshot_job = asset_job(
    "ibov_snapshot_job",
    [ibov_raw_snapshot],
    "Take the day's IBOV portfolio from B3 into raw/ (the sensor refines it).",
)
