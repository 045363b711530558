"""The refine on AWS Glue, seen from the pipeline: the job script shipped in the package, its arguments, and the
promotion of its output into the lake's refined layer.

The Spark job writes the refined rows to a staging folder of the lake (Hive layout ``Data=.../Setor=.../``).
``promote_staged_refined`` then writes each day through ``PortfolioStore.write_refined``, which is what the local
engine does too: the refined objects are the same bytes whichever engine refined them, and a day's partition is
replaced by putting the new objects before removing the stale ones (Spark's own overwrite deletes first, and a
dynamic overwrite would leave behind a sector that left the index).
"""

from __future__ import annotations

import datetime as dt
from importlib import resources
from typing import Any

import pandas as pd
import pyarrow as pa

from b3_dagster.model import DATE, REFINED_COLUMNS, REFINED_PARTITION_COLUMNS, REFINED_SCHEMA, SECTOR
from b3_dagster.storage.lake import Lake
from b3_dagster.storage.layout import raw_prefix, read_parquet_bytes, sector_from_relative_key
from b3_dagster.storage.portfolio_store import PortfolioStore
from b3_dagster.transforms.sectors import RAW_VIEW, refine_sql

SCRIPT_NAME = "refine_sectors.py"
STAGING_PREFIX = "staging/glue-refine/"  # outside raw/ and refined/: readers of the layers never list it


class GlueRefineError(RuntimeError):
    pass


def refine_script() -> bytes:
    """The job script as shipped in the package (what must be at the Glue job's ScriptLocation)."""
    return (resources.files("b3_dagster.glue_jobs") / SCRIPT_NAME).read_bytes()


def staging_prefix(token: str) -> str:
    if not token or "/" in token:
        raise ValueError(f"invalid staging token {token!r}")
    return f"{STAGING_PREFIX}{token}/"


def refine_job_arguments(lake: Lake, days: list[dt.date], processing_date: dt.date,
                         output_prefix: str) -> dict[str, str]:
    """The Glue job arguments (``--name``: value) that refine ``days`` of ``lake`` into ``output_prefix``."""
    if not days:
        raise ValueError("no days to refine")
    raw_paths = [lake.uri(raw_prefix(day)) for day in sorted(set(days))]
    if any("," in path for path in raw_paths):
        raise ValueError(f"a raw path contains a comma, which separates paths: {raw_paths[0]}")
    return {
        "--raw_paths": ",".join(raw_paths),
        "--refine_sql": refine_sql(processing_date, dialect="spark", source=RAW_VIEW),
        "--source_view": RAW_VIEW,
        "--output_path": lake.uri(output_prefix.rstrip("/")),
        "--partition_columns": ",".join(REFINED_PARTITION_COLUMNS),
    }


def start_job_run_params(job_name: str, arguments: dict[str, str], **extra: Any) -> dict[str, Any]:
    """``start_job_run_params`` for ``PipesGlueClient.run`` (``JobName``, ``Arguments`` and any other StartJobRun
    field such as ``WorkerType``/``NumberOfWorkers``/``Timeout``)."""
    return {"JobName": job_name, "Arguments": dict(arguments), **extra}


def split_s3_object_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/path/to/object`` -> (``bucket``, ``path/to/object``)."""
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"{uri!r} is not s3://bucket/key")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def upload_script(s3_client: Any, script_uri: str, script: bytes | None = None) -> bool:
    """Put the packaged script at ``script_uri`` unless the same bytes are already there. Returns True when it
    uploaded."""
    script = refine_script() if script is None else script
    bucket, key = split_s3_object_uri(script_uri)
    try:
        if s3_client.get_object(Bucket=bucket, Key=key)["Body"].read() == script:
            return False
    except s3_client.exceptions.NoSuchKey:
        pass
    s3_client.put_object(Bucket=bucket, Key=key, Body=script, ContentType="text/x-python")
    return True


def read_staged_refined(lake: Lake, prefix: str) -> pd.DataFrame:
    """The rows the Spark job wrote under ``prefix`` (``Data=<day>/Setor=<escaped>/part-*.parquet``), typed as
    REFINED_SCHEMA and sorted by (Data, Setor)."""
    frames = []
    for info in lake.list(prefix):
        relative = info.key[len(prefix):]
        if not relative.endswith(".parquet") or relative.rsplit("/", 1)[-1].startswith(("_", ".")):
            continue  # _SUCCESS markers, .crc files
        day_folder, _, rest = relative.partition("/")
        name, _, value = day_folder.partition("=")
        try:
            if name != DATE:
                raise ValueError(f"expected {DATE}=<day>")
            day = dt.date.fromisoformat(value)
            sector = sector_from_relative_key(rest)
        except ValueError as error:
            raise GlueRefineError(f"unexpected object {lake.uri(info.key)} in the Glue job's output: {error}") \
                from error
        frame = read_parquet_bytes(lake.read_bytes(info.key)).to_pandas(date_as_object=True)
        frame[DATE] = day
        frame[SECTOR] = sector
        frames.append(frame)
    if not frames:
        return pa.Table.from_pylist([], schema=REFINED_SCHEMA).to_pandas(date_as_object=True)
    combined = pd.concat(frames, ignore_index=True)
    missing = [name for name in REFINED_COLUMNS if name not in combined.columns]
    if missing:
        raise GlueRefineError(f"the Glue job's output under {lake.uri(prefix)} lacks columns {missing}")
    table = pa.Table.from_pandas(combined[REFINED_COLUMNS], schema=REFINED_SCHEMA, preserve_index=False)
    return table.to_pandas(date_as_object=True).sort_values([DATE, SECTOR]).reset_index(drop=True)


def promote_staged_refined(store: PortfolioStore, prefix: str, days: list[dt.date]) -> dict[dt.date, list[str]]:
    """Write each requested day's staged rows as the day's refined partition, then remove the staging folder.
    Raises (before writing anything) when a day has no staged rows or the output holds days not asked for."""
    staged = read_staged_refined(store.lake, prefix)
    wanted = sorted(set(days))
    found = set(staged[DATE])
    missing = [day for day in wanted if day not in found]
    extra = sorted(found - set(wanted))
    if missing or extra:
        raise GlueRefineError(
            f"the Glue job's output under {store.lake.uri(prefix)} does not match the request: "
            + (f"no rows for {[str(d) for d in missing[:5]]}{' ...' if len(missing) > 5 else ''}" if missing else "")
            + ("; " if missing and extra else "")
            + (f"unexpected days {[str(d) for d in extra[:5]]}" if extra else "")
            + "; nothing was promoted")
    written = {day: store.write_refined(day, staged[staged[DATE] == day].reset_index(drop=True)) for day in wanted}
    store.lake.delete([info.key for info in store.lake.list(prefix)])
    return written
