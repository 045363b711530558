"""The index assets' keys and their check specs."""

import dagster as dg

from b3_dagster.storage.bar_store import INDEX_TABLE
from b3_dagster.storage.tables import INDEX_TABLE_DEF

RAW_INDEX_ASSET = "ibov_index_raw"
REFINED_INDEX_ASSET = "ibov_index_refined"
INDEX_TABLE_ASSET = INDEX_TABLE  # "ibov_refined"


HISTORY_RAW_ASSET = "index_history_raw"
CLOSES_ASSET = "index_closes"
ANOMALY_ASSET = "ibov_anomalies"
ANOMALY_CHART_ASSET = "ibov_anomaly_chart"
IBOV_REFINED_KEY = dg.AssetKey(INDEX_TABLE_DEF.name)  # defs/index/assets.py


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
