"""B3's Classificação Setorial vintages -> the sector dimension, and the sector-weights chart."""

import dagster as dg
import pandas as pd
import pyarrow as pa
from pydantic import Field

from b3_dagster.calendar import B3_TIMEZONE
from b3_dagster.defs.resources import CatalogResource, LakeResource
from b3_dagster.defs.shared.failures import fails_clearly
from b3_dagster.defs.shared.metadata import CHARTS_PREFIX, chart, chart_asset, path, preview, sql_block
from b3_dagster.defs.shared.tables import snapshot_metadata, table_asset
from b3_dagster.errors import Missing, TableHasNoRows
from b3_dagster.model import (
    CLASSIFICATION_SCHEMA,
    CLASSIFICATION_TABLE,
    DATE,
    ECONOMIC_SECTOR,
    FALLBACK_ONLY,
    PART_SUM,
    PORTFOLIO_TABLE,
    SOURCE_FILE,
    VALID_FROM,
)
from b3_dagster.settings import B3_HOST
from b3_dagster.sources.b3_classification import fetch_classification, is_new_vintage
from b3_dagster.storage.classification_store import CLASSIFICATION_PREFIX, ClassificationStore
from b3_dagster.storage.tables import CLASSIFICATION_TABLE_DEF, PORTFOLIO_TABLE_DEF, connect, run_query
from b3_dagster.transforms.charts import render_sector_weights_chart

GROUP = "b3_sectors"
CLASSIFICATION_ASSET = CLASSIFICATION_TABLE  # "classificacao_setorial"
SECTOR_WEIGHTS_CHART_ASSET = "ibov_sector_weights_chart"
SECTOR_WEIGHTS_FILE = "ibov_sector_weights.png"
SECTOR_WEIGHTS_SQL = (f"SELECT {DATE}, {ECONOMIC_SECTOR}, SUM({PART_SUM}) AS {PART_SUM} FROM default.{PORTFOLIO_TABLE} "
                      f"WHERE {ECONOMIC_SECTOR} IS NOT NULL GROUP BY {DATE}, {ECONOMIC_SECTOR} "
                      f"ORDER BY {DATE}, {ECONOMIC_SECTOR}")


class ClassificationConfig(dg.Config):
    download: bool = Field(
        default=False,
        description="Also download B3's current classification (GetDownloadIndustryClassification) and keep it in "
                    "the lake as today's vintage when it differs from the latest one.")
    base_url: str = Field(default=B3_HOST, description="B3's host for the download (a replay in tests).")


@table_asset(
    key=CLASSIFICATION_ASSET,
    group_name=GROUP,
    kinds={"excel"},
    description="b3_refined_db.classificacao_setorial: B3's sector classification (Classificação Setorial: setor "
                "econômico / subsetor / segmento by 4-letter issuer code), one vintage per file, as an Iceberg "
                "table. It holds the vintages shipped with the package and every workbook kept in the lake. "
                "**A new vintage arrives** (1) by dropping B3's ClassifSetorial.zip/.xlsx under the lake's "
                f"`{CLASSIFICATION_PREFIX}` folder (in a `vigente_desde=YYYY-MM-DD/` subfolder, or with a date in "
                "its name), or (2) by running this asset with config `download: true`, which fetches B3's current "
                "workbook and keeps it as today's vintage when it changed. The refine places every ticker with this "
                "history (README, \"The sector dimension\"); metadata lists the vintages and any file it could not "
                "use.",
)
@fails_clearly
def classificacao_setorial(context: dg.AssetExecutionContext, config: ClassificationConfig, lake: LakeResource,
                           catalog: CatalogResource) -> dg.MaterializeResult:
    store = ClassificationStore(lake.lake())
    history, errors = store.history()
    downloaded = "not asked (config download: false)"
    if config.download:
        today = pd.Timestamp.now(tz=B3_TIMEZONE).date()
        download = fetch_classification(today, base_url=config.base_url)  # ClassificationError: nothing stored
        if is_new_vintage(history, download.vintage):
            kept = store.add(download.data, download.vintage.source_file, valid_from=today)  # or refused
            downloaded = f"new vintage {today}: {kept.status} at {kept.uri}"
            history, errors = store.history()
        else:
            downloaded = f"unchanged since the latest vintage ({download.url}); not stored"
        context.log.info(f"classification download: {downloaded}")
    for error in errors:
        context.log.warning(f"classification file not used: {error}")
    if history.empty:
        raise Missing("no classification vintage at all (the package ships 12): reinstall it", advice="")
    rows = pa.Table.from_pandas(history[CLASSIFICATION_SCHEMA.names], schema=CLASSIFICATION_SCHEMA,
                                preserve_index=False)
    tables = catalog.tables()
    keys = CLASSIFICATION_TABLE_DEF.keys_of(rows)
    outcome = tables.commit(CLASSIFICATION_TABLE_DEF, rows, keys, {"dagster.run_id": context.run.run_id})
    vintages = (history.groupby([VALID_FROM, SOURCE_FILE, FALLBACK_ONLY]).size().rename("codes").reset_index()
                .sort_values(VALID_FROM))
    context.log.info(f"committed {len(vintages)} classification vintage(s), {outcome.rows} rows to "
                     f"{CLASSIFICATION_TABLE_DEF.qualified_name}")
    return dg.MaterializeResult(metadata={
        "table": CLASSIFICATION_TABLE_DEF.qualified_name,
        **snapshot_metadata(tables, CLASSIFICATION_TABLE_DEF, outcome),
        "vintages": len(vintages),
        "first_vintage": str(vintages[VALID_FROM].iloc[0]),
        "last_vintage": str(vintages[VALID_FROM].iloc[-1]),
        "dagster/row_count": outcome.rows,
        "vintage_list": preview(vintages, rows=100),
        "errors": dg.MetadataValue.md("\n".join(f"- {error}" for error in errors) if errors else "none"),
        "download": downloaded,
        "lake_folder": path(store.lake.uri(CLASSIFICATION_PREFIX)),
    })


@chart_asset(
    key=SECTOR_WEIGHTS_CHART_ASSET,
    group_name=GROUP,
    deps=[dg.AssetKey(PORTFOLIO_TABLE)],
    description="Chart: the weight of each canonical setor_economico in the IBOV over every day of "
                "tb_ibov_refined (stacked areas; ticks mark the sessions that hold data). **To see it:** in this "
                "asset's latest materialisation, the first metadata row `chart` -> *[Show Markdown]*. The PNG is "
                f"also saved in the lake as {CHARTS_PREFIX}{SECTOR_WEIGHTS_FILE} (the `file` row).",
)
@fails_clearly
def ibov_sector_weights_chart(lake: LakeResource, catalog: CatalogResource) -> dg.MaterializeResult:
    rows = run_query(connect(catalog.tables(), table_defs=[PORTFOLIO_TABLE_DEF]), SECTOR_WEIGHTS_SQL)
    if rows.empty:
        raise TableHasNoRows(f"default.{PORTFOLIO_TABLE} has no rows with a canonical sector yet: "
                             "materialise it first (rows from before the sector dimension: "
                             "b3-dagster rebuild-tables)", advice="")
    rows[DATE] = pd.to_datetime(rows[DATE]).dt.date
    png = render_sector_weights_chart(rows)
    days = sorted(set(rows[DATE]))
    return dg.MaterializeResult(metadata={
        **chart(lake.lake(), SECTOR_WEIGHTS_FILE, png, f"IBOV weight by economic sector, {days[0]} to {days[-1]}"),
        "days": len(days),
        "first_day": days[0].isoformat(),
        "last_day": days[-1].isoformat(),
        "sectors": int(rows[ECONOMIC_SECTOR].nunique()),
        "sql": sql_block(SECTOR_WEIGHTS_SQL),
    })


sector_assets = [classificacao_setorial, ibov_sector_weights_chart]
