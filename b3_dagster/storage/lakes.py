"""The lake factory: ``s3://bucket/prefix`` -> ``S3Lake``, anything else -> a local folder."""

from __future__ import annotations

from b3_dagster.storage.lake import Lake, LocalLake


def lake_from_uri(root: str, **s3_options) -> Lake:
    """``s3://bucket/prefix`` -> an S3 lake; anything else is a local folder."""
    if root.startswith("s3://"):
        from b3_dagster.storage.s3_lake import S3Lake  # imported lazily: the local home needs no AWS libraries

        return S3Lake.from_uri(root, **s3_options)
    return LocalLake(root)
