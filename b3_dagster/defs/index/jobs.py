"""Jobs of the index pipeline."""

from b3_dagster.defs.index.assets import (
    ibov_anomalies,
    ibov_anomaly_chart,
    ibov_index_chart,
    ibov_index_raw,
    ibov_sector_chart,
    index_closes,
    index_history_raw,
    index_refine_and_commit,
)
from b3_dagster.defs.shared.declarations import asset_job

index_job = asset_job(
    "ibov_index_job",
    [ibov_index_raw],
    "Fetch the IBOVESPA daily bars of the selected sessions from Yahoo (one request per run).",
)
index_refine_job = asset_job(
    "ibov_index_refine_job",
    [index_refine_and_commit],
    "Refine the selected months of the index history and publish them to b3_refined_db.ibov_refined.",
)
index_charts_job = asset_job(
    "ibov_charts_job",
    [ibov_index_chart, ibov_sector_chart],
    "Redraw the index and sector charts from the catalog.",
)


index_history_job = asset_job("index_history_job", [index_history_raw],
                                "Fetch B3's official closes of the selected (year, index) keys.")
index_closes_job = asset_job("index_closes_job", [index_closes],
                               "Rebuild b3_refined_db.index_closes from raw and check it (min/max, sessions, Yahoo).")
anomaly_job = asset_job("ibov_anomaly_job", [ibov_anomalies, ibov_anomaly_chart],
                          "Score the IBOVESPA days (IsolationForest) and draw the anomaly chart.")
