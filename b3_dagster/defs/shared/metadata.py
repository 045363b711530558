"""Materialisation metadata helpers: previews, paths, charts, the partition-range tags."""

from __future__ import annotations

import dagster as dg
import pandas as pd

# The run tags of a partitioned run: one partition, or a range of partitions in one run (what a single-run backfill
# sets). Dagster 1.13 exports no public name for them: its constants live in the private dagster._core.storage.tags,
# and the public API only reads a range (context.partition_key_range, RunRequest.partition_key_range) -- neither
# RunRequest nor execute_in_process takes one. So the tag strings are declared once here, for the sensor and the CLI
# that launch range runs and the alerts that read a failed run's partition.
PARTITION_TAG = "dagster/partition"
PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"
BACKFILL_TAG = "dagster/backfill"  # set by Dagster on every run of a backfill (the UI's "Materialize" of a range)

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


def sql_block(query: str) -> dg.MetadataValue:
    """A SQL statement shown as a highlighted block in the UI."""
    return dg.MetadataValue.md(f"```sql\n{query}\n```")


def partition_of_run(tags: dict[str, str]) -> str | None:
    """The partition a run covered, from its tags: a key, ``first...last`` for a range run, or None."""
    if tags.get(PARTITION_TAG):
        return tags[PARTITION_TAG]
    start, end = tags.get(PARTITION_RANGE_START_TAG), tags.get(PARTITION_RANGE_END_TAG)
    return f"{start}...{end}" if start and end else None


def days_in_run(context: dg.AssetExecutionContext) -> list[str]:
    """The partition keys of the run: one for a normal run, many for a single-run backfill (holidays excluded)."""
    return list(context.partition_keys) if context.has_partition_key_range else [context.partition_key]


def chart_asset(**asset_args):
    """The decorator of a chart asset: drawn with matplotlib from a table (its ``deps``), shown by ``chart``."""
    return dg.asset(kinds={"matplotlib"}, **asset_args)


def chart(lake, name: str, png: bytes, alt: str) -> dict[str, dg.MetadataValue]:
    """Save a chart asset's PNG as ``<lake>/charts/<name>`` and return the metadata rows that show it: ``chart`` first
    (the UI shows its image one click away, on [Show Markdown]), then ``file``. ``lake``: a storage ``Lake``."""
    from b3_dagster.transforms.charts import markdown_image

    key = f"{CHARTS_PREFIX}{name}"
    lake.write_bytes(key, png)
    return {"chart": dg.MetadataValue.md(markdown_image(png, alt)), "file": path(lake.uri(key))}
