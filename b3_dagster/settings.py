"""The local home's settings, used when the variable is not exported. Plain Python (no dagster import), so that the
command line's quick commands (`b3-dagster query`, `snapshots`) start without loading Dagster.

No ``.env`` is shipped: the dagster CLI would load ./.env over exported variables, and an exported
B3_LAKE_ROOT=s3://... must win."""

from __future__ import annotations

from b3_dagster.sources.b3_portfolio import DEFAULT_BASE_URL
from b3_dagster.sources.yahoo_chart import DEFAULT_BASE_URL as YAHOO_BASE_URL

LOCAL_DEFAULTS = {
    "B3_LAKE_ROOT": "data",
    "B3_CATALOG": "sql",
    "B3_BASE_URL": DEFAULT_BASE_URL,
    "B3_YAHOO_BASE_URL": YAHOO_BASE_URL,
    # The B3 indices whose official closes (and membership comparisons) the b3_indices group fetches: B3 codes
    # separated by commas, e.g. IBOV,IBXX,SMLL. Read when the code location loads (a partition dimension).
    "B3_INDICES": "IBOV",
}
