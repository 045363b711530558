"""The lake on S3 (the AWS home): the same keys as the local lake, under ``s3://bucket/prefix/``.

A single PutObject is atomic on S3 (a reader gets the old object or the new one), so ``write_bytes`` needs no
temporary name. ``replace_prefix`` is the ``Lake`` default: put every new object, then delete the stale ones
under the prefix only, so a reader never finds the partition empty or holding a half-written file.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.exceptions import ClientError

from b3_dagster.errors import S3LakeError
from b3_dagster.storage.lake import Lake, ObjectInfo, check_key

DELETE_BATCH = 1000  # DeleteObjects accepts at most 1000 keys per request
LIST_PAGE_SIZE = 1000  # ListObjectsV2 returns at most 1000 keys per page


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (``bucket``, ``some/prefix/``); the prefix is empty or ends with ``/``."""
    if not uri.startswith("s3://"):
        raise ValueError(f"{uri!r} is not an s3://bucket/prefix URI")
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    if not bucket:
        raise ValueError(f"{uri!r} names no bucket")
    prefix = prefix.strip("/")
    if prefix:
        check_key(prefix)
    return bucket, (prefix + "/" if prefix else "")


def s3_client(endpoint_url: str | None = None, region_name: str | None = None) -> Any:
    """A boto3 S3 client; ``endpoint_url``/``region_name`` default to the environment (AWS_ENDPOINT_URL, ...)."""
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url, region_name=region_name)


class S3Lake(Lake):
    """Objects under ``s3://bucket/prefix/``; keys are relative to that root, exactly as in ``LocalLake``."""

    def __init__(self, bucket: str, prefix: str = "", client: Any = None):
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client = client if client is not None else s3_client()
        self.root_uri = f"s3://{bucket}/{self.prefix}".rstrip("/")

    @classmethod
    def from_uri(cls, root: str, endpoint_url: str | None = None, region_name: str | None = None) -> "S3Lake":
        bucket, prefix = split_s3_uri(root)
        return cls(bucket, prefix, client=s3_client(endpoint_url, region_name))

    def _full(self, key: str) -> str:
        return self.prefix + check_key(key)

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._full(key)}"

    def read_bytes(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._full(key))["Body"].read()
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise FileNotFoundError(self.uri(key)) from error
            raise

    def write_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._full(key), Body=data)

    def write_new(self, key: str, data: bytes) -> bool:
        """S3's conditional write (If-None-Match: *) creates the object only if the key is free."""
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._full(key), Body=data, IfNoneMatch="*")
            return True
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._full(key))
            return True
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        found = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix,
                                       PaginationConfig={"PageSize": LIST_PAGE_SIZE}):
            for item in page.get("Contents", []):
                key = item["Key"][len(self.prefix):]
                if not key or key.endswith("/"):  # folder markers made by consoles/tools are not objects
                    continue
                found.append(ObjectInfo(key=key, size=item["Size"], version=item["ETag"].strip('"'),
                                        modified=item["LastModified"]))
        return sorted(found, key=lambda info: info.key)

    def replace_prefix(self, prefix: str, files: dict[str, bytes]) -> list[str]:
        """The ``Lake`` default (put every new object, then delete the stale ones under ``prefix`` only), refusing
        an empty or invalid prefix, which would make the whole lake "the partition"."""
        check_key(prefix.rstrip("/"))
        return super().replace_prefix(prefix, files)

    def delete(self, keys: list[str]) -> None:
        full_keys = [self._full(key) for key in keys]
        for start in range(0, len(full_keys), DELETE_BATCH):
            batch = full_keys[start:start + DELETE_BATCH]
            answer = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True})
            errors = answer.get("Errors", [])
            if errors:
                first = errors[0]
                raise S3LakeError(f"could not delete {len(errors)} object(s) from s3://{self.bucket}, e.g. "
                                  f"{first.get('Key')}: {first.get('Code')} {first.get('Message')}")
