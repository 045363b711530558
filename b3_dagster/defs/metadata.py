"""Materialisation metadata helpers: previews, paths, counts."""

from __future__ import annotations

import dagster as dg
import pandas as pd
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

# The run tags that make one run cover a range of partitions (what a single-run backfill sets).
PARTITION_RANGE_START_TAG = ASSET_PARTITION_RANGE_START_TAG
PARTITION_RANGE_END_TAG = ASSET_PARTITION_RANGE_END_TAG

PREVIEW_ROWS = 10
CHARTS_PREFIX = "charts/"  # in the lake: every chart asset's PNG

# Said where users launch backfills (the assets' descriptions, the README): what the backfill dialog does not say.
SINGLE_RUN_NOTE = (" Backfill: Dagster makes one run of a *contiguous* range of partitions (e.g. type "
                   "`[2025-01-02...2025-03-31]` in the partition selector); days picked one by one, with gaps "
                   "between them, become one run per day even though the dialog says \"single run\".")


def preview(frame: pd.DataFrame, rows: int = PREVIEW_ROWS) -> dg.MetadataValue:
    return dg.MetadataValue.md(frame.head(rows).to_markdown(index=False) if not frame.empty else "_(no rows)_")


def path(uri: str) -> dg.MetadataValue:
    return dg.MetadataValue.url(uri) if uri.startswith("s3://") else dg.MetadataValue.path(uri)


def days_in_run(context: dg.AssetExecutionContext) -> list[str]:
    """The partition keys of the run: one for a normal run, many for a single-run backfill (holidays excluded)."""
    return list(context.partition_keys) if context.has_partition_key_range else [context.partition_key]


def chart(lake, name: str, png: bytes, alt: str) -> dict[str, dg.MetadataValue]:
    """Save a chart asset's PNG as ``<lake>/charts/<name>`` and return the metadata rows that show it: ``chart`` first
    (the UI shows its image one click away, on [Show Markdown]), then ``file``. ``lake``: a storage ``Lake``."""
    from b3_dagster.charts import markdown_image

    key = f"{CHARTS_PREFIX}{name}"
    lake.write_bytes(key, png)
    return {"chart": dg.MetadataValue.md(markdown_image(png, alt)), "file": path(lake.uri(key))}
