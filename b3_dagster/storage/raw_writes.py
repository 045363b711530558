"""One protocol for every raw write: compare -> refuse -> archive -> write. Plain Python: no Dagster.

Raw is the system of record (B3 serves a past portfolio only once; Yahoo revises bars; B3 serves its history again),
so a stored partition is never silently replaced:

1. every partition of a batch is compared with what is stored before anything is written;
2. one that differs refuses the whole batch, unless the caller allows overwriting;
3. a replaced partition's objects are first copied under ``archive/`` (nothing is deleted unseen);
4. a new partition is created with ``Lake.write_new`` (atomic create-if-absent): when another writer got there
   first, the partition is compared again with what that writer stored, and goes through 2-3.

Each store says what a partition is (its key, bytes, and how to compare it with what is stored) and how its refusal
reads; this module does the rest, the same way for all.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Callable, Sequence

from b3_dagster.storage.lake import Lake
from b3_dagster.storage.layout import archive_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RawWriteOutcome:
    status: str  # "written" | "unchanged" | "replaced"
    key: str
    uri: str
    rows: int
    archived_key: str | None = None


@dataclass(frozen=True)
class RawPartition:
    """One partition to write. ``stored`` lists the objects the partition holds now (all are archived when it is
    replaced, and all but ``key`` removed); ``compare`` says how the stored partition differs from ``data`` (None:
    the same), and is only called when ``stored`` found something."""

    key: str
    data: bytes
    rows: int
    label: str  # how a log line names the partition
    stored: Callable[[], list[str]]
    compare: Callable[[], str | None]


Conflicts = list[tuple[RawPartition, str]]  # (partition, how it differs from what is stored)


def write_raw_partitions(lake: Lake, partitions: Sequence[RawPartition], *, allow_overwrite: bool,
                         refuse: Callable[[Conflicts], Exception] | None = None,
                         now: dt.datetime | None = None) -> list[RawWriteOutcome]:
    """Write ``partitions`` by the protocol above. ``refuse`` builds the error raised for the conflicting
    partitions (nothing of the batch is written then); it may be left out only with ``allow_overwrite``."""
    if refuse is None and not allow_overwrite:
        raise ValueError("write_raw_partitions needs refuse= unless allow_overwrite is set")
    plan = []
    for partition in partitions:
        existing = partition.stored()
        plan.append((partition, existing, partition.compare() if existing else None))
    conflicts = [(partition, difference) for partition, _, difference in plan if difference is not None]
    if conflicts and not allow_overwrite:
        raise refuse(conflicts)

    stamp = now or dt.datetime.now(dt.timezone.utc)
    outcomes = []
    for partition, existing, difference in plan:
        if not existing:
            if lake.write_new(partition.key, partition.data):
                outcomes.append(RawWriteOutcome("written", partition.key, lake.uri(partition.key), partition.rows))
                continue
            # another writer got there first: compare with what it wrote
            existing, difference = partition.stored(), partition.compare()
            if difference is not None and not allow_overwrite:
                raise refuse([(partition, difference)])
        if difference is None:
            outcomes.append(RawWriteOutcome("unchanged", partition.key, lake.uri(partition.key), partition.rows))
            continue
        outcomes.append(_replace(lake, partition, existing, difference, stamp))
    return outcomes


def _replace(lake: Lake, partition: RawPartition, existing: list[str], difference: str,
             stamp: dt.datetime) -> RawWriteOutcome:
    archived = None
    for old_key in existing:
        target = archive_key(old_key, stamp)
        lake.write_bytes(target, lake.read_bytes(old_key))
        archived = archived or target
    lake.write_bytes(partition.key, partition.data)
    others = [key for key in existing if key != partition.key]
    if others:
        lake.delete(others)
    log.warning("raw partition %s replaced (%s); previous data archived at %s", partition.label, difference, archived)
    return RawWriteOutcome("replaced", partition.key, lake.uri(partition.key), partition.rows, archived)
