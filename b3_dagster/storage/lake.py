"""The lake: a tree of objects under a root, on local disk or (see ``s3_lake``) on S3.

Every write is atomic: a reader sees the old object or the new one, never a half-written file. Keys are
``/``-separated paths relative to the root (``raw/date=2025-04-07/ibov_setor.parquet``).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

TEMP_PREFIX = ".tmp-"  # temporary names; never listed, never read


@dataclass(frozen=True)
class ObjectInfo:
    """One object of the lake. ``version`` changes whenever the content may have changed (etag or mtime+size)."""

    key: str
    size: int
    version: str
    modified: dt.datetime


class Lake(ABC):
    """The operations the pipeline needs from a storage backend, and nothing more."""

    root_uri: str

    @abstractmethod
    def read_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None:
        """Create or replace one object atomically."""

    @abstractmethod
    def write_new(self, key: str, data: bytes) -> bool:
        """Create the object only if no object has that key, atomically (two writers cannot both create it).
        Returns False, writing nothing, when the key already exists."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Every object whose key starts with ``prefix``, recursively, sorted by key."""

    @abstractmethod
    def delete(self, keys: list[str]) -> None: ...

    def replace_prefix(self, prefix: str, files: dict[str, bytes]) -> list[str]:
        """Make ``prefix`` hold exactly ``files`` (keys relative to ``prefix``): the new objects are written first,
        then the objects that are no longer wanted are removed. Nothing outside ``prefix`` is touched.
        Returns the full keys written."""
        prefix = _folder(prefix)
        wanted = {prefix + name: data for name, data in files.items()}
        stale = [info.key for info in self.list(prefix) if info.key not in wanted]
        for key, data in wanted.items():
            self.write_bytes(key, data)
        if stale:
            self.delete(stale)
        return sorted(wanted)

    def uri(self, key: str) -> str:
        return f"{self.root_uri.rstrip('/')}/{key}"


def _folder(prefix: str) -> str:
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def check_key(key: str) -> str:
    parts = key[:-1].split("/") if key.endswith("/") else key.split("/")  # a folder key may end with "/"
    if not key or key.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"invalid lake key {key!r}")
    return key


class LocalLake(Lake):
    """The lake as a folder on disk (the default home)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser().resolve()
        self.root_uri = str(self.root)

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def uri(self, key: str) -> str:
        return str(self.path(key))

    def read_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    @staticmethod
    def _temporary_copy(target: Path, data: bytes) -> Path:
        """``data`` written and synced to a temporary name beside ``target`` (never listed, never read)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=target.parent)
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
                stream.flush()
                os.fsync(stream.fileno())
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        return Path(temp_name)

    def write_bytes(self, key: str, data: bytes) -> None:
        target = self.path(key)
        temp = self._temporary_copy(target, data)
        try:
            os.replace(temp, target)  # atomic on POSIX: readers see the old file or the new one
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    def write_new(self, key: str, data: bytes) -> bool:
        target = self.path(key)
        temp = self._temporary_copy(target, data)
        try:
            os.link(temp, target)  # fails if the target exists: no check-then-write race
            return True
        except FileExistsError:
            return False
        finally:
            temp.unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        base = self.root / prefix.rstrip("/") if prefix else self.root
        # A prefix may end inside a name ("raw/date=2025"): walk from its folder and filter.
        start = base if base.is_dir() else base.parent
        if not start.is_dir():
            return []
        found = []
        for directory, subdirs, names in os.walk(start):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith(TEMP_PREFIX))
            for name in sorted(names):
                if name.startswith(TEMP_PREFIX):
                    continue
                path = Path(directory) / name
                key = path.relative_to(self.root).as_posix()
                if not key.startswith(prefix):
                    continue
                try:
                    stat = path.stat()
                except FileNotFoundError:  # deleted or moved by another process since the walk saw it: not listed
                    continue
                found.append(ObjectInfo(key=key, size=stat.st_size, version=f"{stat.st_mtime_ns}-{stat.st_size}",
                                        modified=dt.datetime.fromtimestamp(stat.st_mtime, dt.timezone.utc)))
        return sorted(found, key=lambda info: info.key)

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            path = self.path(key)
            path.unlink(missing_ok=True)
            # Remove folders left empty, up to (not including) the root.
            parent = path.parent
            while parent != self.root and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent

    def replace_prefix(self, prefix: str, files: dict[str, bytes]) -> list[str]:
        """Build the new folder beside the old one, then swap them with two renames, so a reader sees the whole
        old partition or the whole new one."""
        prefix = _folder(check_key(prefix.rstrip("/")))
        target = self.path(prefix.rstrip("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.parent / f"{TEMP_PREFIX}{target.name}-{uuid.uuid4().hex}"
        retired = target.parent / f"{TEMP_PREFIX}old-{target.name}-{uuid.uuid4().hex}"
        try:
            for name, data in files.items():
                path = staging / check_key(name)
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "wb") as stream:
                    stream.write(data)
                    stream.flush()
                    os.fsync(stream.fileno())
            if not files:
                staging.mkdir(parents=True, exist_ok=True)
            if target.exists():
                os.replace(target, retired)
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            if retired.exists() and not target.exists():
                os.replace(retired, target)  # put the old partition back
            raise
        shutil.rmtree(retired, ignore_errors=True)
        if not files:
            target.rmdir()
        return sorted(prefix + name for name in files)
