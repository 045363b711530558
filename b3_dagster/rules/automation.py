"""What the schedule and the raw-partition sensor decide, as pure functions (the Dagster side is in defs/automation).

The sensor replaces seed 000's S3-event -> trigger-Lambda -> Glue chain: it lists the raw layer, compares each
object's version (ETag on S3, mtime+size locally) with the version whose day was refined (recorded in the Dagster
instance), and asks for one refine run per group of consecutive new or changed days. Its cursor stays small: a
digest of the last listing and a high-water mark, not one entry per object.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Mapping

from b3_dagster.calendar import is_session
from b3_dagster.errors import NotARawPartition
from b3_dagster.storage.lake import ObjectInfo
from b3_dagster.storage.layout import OTHER_RAW_PREFIXES, RAW_PREFIX, parse_raw_key


@dataclass
class RawCursor:
    """What the sensor keeps between ticks, small enough to read on its page in the UI.

    ``digest`` fingerprints the last listing (every key@version): an unchanged lake costs one listing and no look-up.
    ``objects`` and ``newest_day`` (the high-water mark) say what that listing held. The per-object detail (which
    object version of a day was refined) is not kept here: it is recomputed from the Dagster instance, where every
    raw write is recorded with its ``object_key``/``object_version``. Only what the instance cannot know is kept:
    ``ignored`` (objects outside the layout, whose reason is logged once per version) and ``requested`` (run keys
    asked for and not refined yet, so a run in flight is not requested twice).
    """

    digest: str = ""
    objects: int = 0
    newest_day: str = ""
    ignored: dict[str, str] = field(default_factory=dict)
    requested: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str | None) -> "RawCursor":
        if not text:
            return cls()
        try:
            data = json.loads(text)
            return cls(digest=str(data.get("digest", "")), objects=int(data.get("objects", 0)),
                       newest_day=str(data.get("newest_day", "")), ignored=dict(data.get("ignored", {})),
                       requested=list(data.get("requested", [])))
        except (ValueError, AttributeError, TypeError):
            return cls()  # an unreadable cursor starts over: the instance and run keys still prevent duplicates

    def serialize(self) -> str:
        return json.dumps({"digest": self.digest, "objects": self.objects, "newest_day": self.newest_day,
                           "ignored": self.ignored, "requested": self.requested}, separators=(",", ":"))


def listing_digest(objects: list[ObjectInfo]) -> str:
    """Fingerprint of a listing: changes when any object appears, disappears or changes version."""
    lines = sorted(f"{info.key}@{info.version}" for info in objects)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RawChange:
    day: dt.date
    key: str
    version: str


@dataclass(frozen=True)
class SensorDecision:
    changes: list[RawChange]  # new or changed raw objects with a valid partition, not refined or requested yet
    ignored: list[tuple[str, str]]  # (key, reason), each reported once per version
    cursor: RawCursor


def decide(objects: list[ObjectInfo], cursor: RawCursor, valid_days: set[str],
           refined: Mapping[str, str] | None = None) -> SensorDecision:
    """Compare a listing of ``raw/`` with what is already refined and what the cursor holds.

    ``valid_days`` are the partition keys that exist; ``refined`` maps an object key to the version whose day has
    been refined since (from the instance). Groups requested by an earlier tick (run keys in the cursor) are not
    requested again while their run is in flight."""
    refined = refined or {}
    ignored_seen = dict(cursor.ignored)
    changes, ignored, still_ignored = [], [], {}
    newest = cursor.newest_day
    for info in objects:
        if info.key.startswith(OTHER_RAW_PREFIXES):  # the other pipelines' raw layers: their own assets read them
            continue
        try:
            day = parse_raw_key(info.key)
        except NotARawPartition as error:
            still_ignored[info.key] = info.version
            if ignored_seen.get(info.key) != info.version:
                ignored.append((info.key, str(error)))
            continue
        if day.isoformat() not in valid_days:
            still_ignored[info.key] = info.version
            if ignored_seen.get(info.key) != info.version:
                reason = ("not a B3 session (weekend or holiday)" if not _safe_is_session(day)
                          else "outside the partitions' range (before the start date or after today)")
                ignored.append((info.key, f"{day} is {reason}"))
            continue
        newest = max(newest, day.isoformat())
        if refined.get(info.key) == info.version:
            continue
        changes.append(RawChange(day, info.key, info.version))
    pending, requested = _already_requested(changes, cursor.requested)
    changes = [change for change in changes if change not in pending]
    next_cursor = RawCursor(digest=listing_digest(objects), objects=len(objects), newest_day=newest,
                            ignored=still_ignored, requested=requested)
    return SensorDecision(changes, ignored, next_cursor)


def _already_requested(changes: list[RawChange], requested: list[str]) -> tuple[set[RawChange], list[str]]:
    """The changes that an earlier tick already requested (the run key over their days is in the cursor), and the
    run keys still pending. A run key that no longer matches (refined since, or changed again) is dropped."""
    pending: set[RawChange] = set()
    still: list[str] = []
    for key in requested:
        subset = [change for change in changes if _in_range(change.day, key)]
        if subset and run_key(subset) == key:
            pending.update(subset)
            still.append(key)
    return pending, still


def _in_range(day: dt.date, key: str) -> bool:
    try:
        first, last = key.split(":")[1].split("..")
        return first <= day.isoformat() <= last
    except (IndexError, ValueError):
        return False


def _safe_is_session(day: dt.date) -> bool:
    try:
        return is_session(day)
    except ValueError:
        return False


def group_consecutive(changes: list[RawChange], partition_keys: list[str]) -> list[list[RawChange]]:
    """Split changes into runs of consecutive partitions (in the partition list, so a holiday between two days
    does not split them): each group becomes one run over a partition range."""
    position = {key: index for index, key in enumerate(partition_keys)}
    by_day: dict[dt.date, list[RawChange]] = {}
    for change in changes:
        by_day.setdefault(change.day, []).append(change)
    groups: list[list[RawChange]] = []
    previous = None
    for day in sorted(by_day):
        index = position[day.isoformat()]
        if previous is None or index != previous + 1:
            groups.append([])
        groups[-1].extend(by_day[day])
        previous = index
    return groups


def contiguous_ranges(days: list[dt.date], partition_keys: list[str]) -> list[tuple[str, str]]:
    """(first, last) of each run of consecutive partitions among ``days`` (a holiday between two sessions does not
    split them): Dagster single-runs a backfill only over such a contiguous range."""
    changes = [RawChange(day, "", "") for day in sorted(set(days))]
    return [(group[0].day.isoformat(), group[-1].day.isoformat())
            for group in group_consecutive(changes, partition_keys)]


def run_key(group: list[RawChange]) -> str:
    """Stable for the same objects at the same versions, different as soon as one changes."""
    digest = hashlib.sha256("\n".join(f"{c.key}@{c.version}" for c in sorted(group, key=lambda c: c.key)).encode())
    days = sorted({c.day for c in group})
    return f"raw:{days[0]}..{days[-1]}:{digest.hexdigest()[:16]}"


def schedule_decision(now_in_sao_paulo: dt.datetime) -> tuple[str | None, str]:
    """(partition key to snapshot, or None to skip; the reason shown in the UI)."""
    day = now_in_sao_paulo.date()
    if day.weekday() >= 5:
        return None, f"{day} is a {day:%A}: B3 does not trade, there is no portfolio to take"
    if not _safe_is_session(day):
        return None, f"{day} is a B3 holiday: there is no portfolio to take"
    return day.isoformat(), f"B3 session {day}: taking the day's IBOV portfolio"


__all__ = ["RAW_PREFIX", "RawCursor", "RawChange", "SensorDecision", "contiguous_ranges", "decide",
           "group_consecutive", "listing_digest", "run_key", "schedule_decision"]
