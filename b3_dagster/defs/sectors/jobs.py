"""Jobs of the sector dimension."""

import dagster as dg

from b3_dagster.defs.sectors.assets import sector_assets

sector_job = dg.define_asset_job(
    "b3_sectors_job",
    selection=dg.AssetSelection.assets(*sector_assets),
    description="Commit B3's classification history to b3_refined_db.classificacao_setorial and redraw the sector "
                "weights chart.",
)
