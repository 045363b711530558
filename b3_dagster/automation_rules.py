"""What the schedule and the raw-partition sensor decide, as pure functions (the Dagster side is in defs/automation).

The sensor replaces seed 000's S3-event -> trigger-Lambda -> Glue chain: it lists the raw layer, compares each
object's version (ETag on S3, mtime+size locally) with what its cursor has seen, and asks for one refine run per
group of consecutive new or changed days.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field

from b3_dagster.calendar import is_session
from b3_dagster.storage.lake import ObjectInfo
from b3_dagster.storage.layout import RAW_PREFIX, NotARawPartition, parse_raw_key

OTHER_RAW_DATASETS = ("raw/ibov_index/",)  # raw layers of other assets, watched by nobody here


@dataclass
class RawCursor:
    """Object versions already handled (refined, or ignored with a logged reason)."""

    seen: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> "RawCursor":
        if not text:
            return cls()
        try:
            data = json.loads(text)
            return cls(seen=dict(data.get("seen", {})))
        except (ValueError, AttributeError):
            return cls()  # an unreadable cursor starts over: run keys still prevent duplicate runs

    def serialize(self) -> str:
        return json.dumps({"seen": self.seen}, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class RawChange:
    day: dt.date
    key: str
    version: str


@dataclass(frozen=True)
class SensorDecision:
    changes: list[RawChange]  # new or changed raw objects with a valid partition
    ignored: list[tuple[str, str]]  # (key, reason), each reported once per version
    cursor: RawCursor


def decide(objects: list[ObjectInfo], cursor: RawCursor, valid_days: set[str]) -> SensorDecision:
    """Compare a listing of ``raw/`` with the cursor. ``valid_days`` are the partition keys that exist."""
    seen = dict(cursor.seen)
    changes, ignored = [], []
    for info in objects:
        if seen.get(info.key) == info.version:
            continue
        seen[info.key] = info.version
        if info.key.startswith(OTHER_RAW_DATASETS):
            continue
        try:
            day = parse_raw_key(info.key)
        except NotARawPartition as error:
            ignored.append((info.key, str(error)))
            continue
        if day.isoformat() not in valid_days:
            reason = ("not a B3 session (weekend or holiday)" if not _safe_is_session(day)
                      else "outside the partitions' range (before the start date or after today)")
            ignored.append((info.key, f"{day} is {reason}"))
            continue
        changes.append(RawChange(day, info.key, info.version))
    return SensorDecision(changes, ignored, RawCursor(seen))


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


__all__ = ["RAW_PREFIX", "RawCursor", "RawChange", "SensorDecision", "decide", "group_consecutive", "run_key",
           "schedule_decision"]
