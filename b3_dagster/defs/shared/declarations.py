"""How every concern declares a raw asset (one B3 answer per partition) and an asset job."""

import dagster as dg

from b3_dagster.defs.shared.partitions import GROUP


def raw_asset(*, key: str, partitions_def: dg.PartitionsDefinition, kinds: set[str], description: str):
    """The decorator of this group's raw assets: one B3 answer per partition, kept as B3 served it."""
    return dg.asset(key=key, group_name=GROUP, partitions_def=partitions_def, kinds=kinds, description=description)


def asset_job(name: str, assets: list, description: str):
    return dg.define_asset_job(name, selection=dg.AssetSelection.assets(*assets), description=description)
