"""The refine on AWS Glue, seen from the pipeline: the job script shipped in the package and its arguments.

The Spark job writes the refined rows into the run's staging folder of the lake (``staging/<dataset>/<run id>/``,
one ``Data=<day>/`` folder per day; the sector stays a column, never a path). The table asset then commits the
staged rows to the Iceberg table with the same code as after the local engine (``staging.commit_staged``).
"""

from __future__ import annotations

import datetime as dt
from importlib import resources
from typing import Any

import pyarrow as pa

from b3_dagster.model import DATE
from b3_dagster.storage.lake import Lake
from b3_dagster.storage.layout import raw_prefix
from b3_dagster.storage.staging import STAGING_PREFIX  # noqa: F401  (the job writes under it)
from b3_dagster.storage.layout import parquet_bytes
from b3_dagster.transforms.sector_refine import MAPPING_VIEW, RAW_VIEW, refine_sql

SCRIPT_NAME = "refine_sectors.py"
# Spark partitions its output by day only: a sector is a column, so no sector name ever becomes a path segment.
STAGED_PARTITION_COLUMNS = (DATE,)
# The run's sector mapping, beside the raw the job reads: a sibling of the run's output folder (Spark's overwrite of
# the output folder would delete a file inside it), removed by the refine once the job is done.
MAPPING_DATASET_SUFFIX = "_inputs"
MAPPING_FILE = "sector_mapping.parquet"


def refine_script() -> bytes:
    """The job script as shipped in the package (what must be at the Glue job's ScriptLocation)."""
    return (resources.files("b3_dagster.glue_jobs") / SCRIPT_NAME).read_bytes()


def mapping_key(output_prefix: str) -> str:
    """Where the run's sector mapping is staged for the job: ``staging/<dataset>_inputs/<run id>/...``."""
    parts = output_prefix.rstrip("/").split("/")
    if len(parts) < 3:
        raise ValueError(f"{output_prefix!r} is not a run's staging folder (staging/<dataset>/<run id>/)")
    parts[-2] += MAPPING_DATASET_SUFFIX
    return "/".join(parts) + "/" + MAPPING_FILE


def stage_sector_mapping(lake: Lake, output_prefix: str, mapping: "pa.Table") -> str:
    """Write the run's sector mapping (SECTOR_MAPPING_SCHEMA) where the job reads it; returns its key."""
    key = mapping_key(output_prefix)
    lake.write_bytes(key, parquet_bytes(mapping))
    return key


def refine_job_arguments(lake: Lake, days: list[dt.date], processing_date: dt.date,
                         output_prefix: str) -> dict[str, str]:
    """The Glue job arguments (``--name``: value) that refine ``days`` of ``lake`` into ``output_prefix``, joining
    the sector mapping staged by ``stage_sector_mapping`` for the same prefix."""
    if not days:
        raise ValueError("no days to refine")
    raw_paths = [lake.uri(raw_prefix(day)) for day in sorted(set(days))]
    if any("," in path for path in raw_paths):
        raise ValueError(f"a raw path contains a comma, which separates paths: {raw_paths[0]}")
    return {
        "--raw_paths": ",".join(raw_paths),
        "--refine_sql": refine_sql(processing_date, dialect="spark", source=RAW_VIEW, mapping=MAPPING_VIEW),
        "--source_view": RAW_VIEW,
        "--mapping_path": lake.uri(mapping_key(output_prefix)),
        "--mapping_view": MAPPING_VIEW,
        "--output_path": lake.uri(output_prefix.rstrip("/")),
        "--partition_columns": ",".join(STAGED_PARTITION_COLUMNS),
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
