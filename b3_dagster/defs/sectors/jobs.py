"""Jobs of the sector dimension."""

from b3_dagster.defs.sectors.assets import sector_assets
from b3_dagster.defs.shared.declarations import asset_job

sector_job = asset_job(
    "b3_sectors_job",
    sector_assets,
    "Commit B3's classification history to b3_refined_db.classificacao_setorial and redraw the sector weights "
    "chart.",
)
