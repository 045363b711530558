import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from b3_dagster.rules.automation import (
    RawCursor,
    contiguous_ranges,
    decide,
    group_consecutive,
    listing_digest,
    run_key,
    schedule_decision,
)
from b3_dagster.storage.lake import ObjectInfo

WHEN = dt.datetime(2025, 4, 7, tzinfo=dt.timezone.utc)
VALID = {"2025-04-03", "2025-04-04", "2025-04-07", "2025-04-08", "2025-11-19", "2025-11-21"}
KEYS = ["2025-04-03", "2025-04-04", "2025-04-07", "2025-04-08", "2025-11-19", "2025-11-21"]


def obj(key, version="v1"):
    return ObjectInfo(key=key, size=10, version=version, modified=WHEN)


def test_new_then_requested_then_refined_then_changed():
    key = "raw/date=2025-04-07/ibov_setor.parquet"
    listing = [obj(key)]
    first = decide(listing, RawCursor(), VALID)
    assert [c.day for c in first.changes] == [dt.date(2025, 4, 7)]
    requested = RawCursor.parse(first.cursor.serialize())
    requested.requested.append(run_key(first.changes))  # what the sensor does with the run it asks for
    in_flight = decide(listing, RawCursor.parse(requested.serialize()), VALID)
    assert in_flight.changes == [] and in_flight.ignored == [], "a run in flight is not requested twice"
    refined = decide(listing, in_flight.cursor, VALID, refined={key: "v1"})
    assert refined.changes == [] and refined.cursor.requested == [], "refined: the run key is forgotten"
    changed = decide([obj(key, "v2")], refined.cursor, VALID, refined={key: "v1"})
    assert [c.version for c in changed.changes] == ["v2"]
    assert run_key(changed.changes) != run_key(first.changes)
    assert run_key(first.changes) == run_key(decide(listing, RawCursor(), VALID).changes)


def test_days_already_refined_are_not_changes_even_on_a_fresh_cursor():
    """The first `dagster dev` after the demo: the instance says every day was refined at its current version."""
    listing = [obj(f"raw/date={day}/ibov_setor.parquet") for day in KEYS]
    decision = decide(listing, RawCursor(), VALID, refined={o.key: o.version for o in listing})
    assert decision.changes == [] and decision.cursor.newest_day == "2025-11-21"


def test_the_cursor_stays_compact_for_hundreds_of_objects():
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=n) for n in range(450)]
    valid = {day.isoformat() for day in days if day.weekday() < 5}
    listing = [obj(f"raw/date={day}/ibov_setor.parquet") for day in sorted(valid)]
    assert len(listing) > 300
    decision = decide(listing, RawCursor(), valid, refined={o.key: o.version for o in listing})
    text = decision.cursor.serialize()
    assert len(text) < 200 and decision.cursor.newest_day in text and str(len(listing)) in text
    assert decision.cursor.digest == listing_digest(list(reversed(listing))), "the digest ignores listing order"
    assert decision.cursor.digest != listing_digest(listing[:-1])


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("raw/ibov_setor.parquet", "not raw/date=YYYY-MM-DD/<file>.parquet"),
        ("raw/date=2025-13-01/ibov_setor.parquet", "is not a YYYY-MM-DD date"),
        ("raw/date=2025-04-07/notes.txt", "not a .parquet file"),
        ("raw/date=2025-11-20/ibov_setor.parquet", "2025-11-20 is not a B3 session"),
        ("raw/date=2025-04-05/ibov_setor.parquet", "not a B3 session"),
        ("raw/date=2019-01-02/ibov_setor.parquet", "outside the partitions' range"),
    ],
)
def test_bad_keys_are_ignored_once_with_a_reason(key, reason):
    decision = decide([obj(key)], RawCursor(), VALID)
    assert decision.changes == []
    assert len(decision.ignored) == 1 and reason in decision.ignored[0][1]
    assert decide([obj(key)], decision.cursor, VALID).ignored == [], "the reason is logged once per version"


def test_other_raw_datasets_are_not_the_portfolio():
    """The raw layers the other pipelines keep (what the demo writes) are neither refined nor warned about."""
    others = ["raw/ibov_index/date=2025-04-07/bvsp_daily.parquet",
              "raw/index_history/indice=IBOV/ano=2022/grid_pt-br.json",
              "raw/index_history/indice=IBOV/ano=1998/evolucao_diaria.csv",
              "raw/index_membership/date=2025-04-07/GetStockIndex.json",
              "raw/index_portfolio/indice=IBXX/date=2024-11-12/IBXXDia_12-11-24.csv"]
    decision = decide([obj(key) for key in others], RawCursor(), VALID)
    assert decision.changes == [] and decision.ignored == []


def test_consecutive_sessions_make_one_group_across_weekends():
    changes = decide([obj(f"raw/date={d}/f.parquet") for d in ["2025-04-03", "2025-04-04", "2025-04-07",
                                                              "2025-11-19", "2025-11-21"]], RawCursor(), VALID).changes
    groups = group_consecutive(changes, KEYS)
    assert [[c.day.isoformat() for c in g] for g in groups] == [
        ["2025-04-03", "2025-04-04", "2025-04-07"], ["2025-11-19", "2025-11-21"]]  # 11-20 is a holiday


def test_unreadable_cursor_starts_over():
    assert RawCursor.parse("not json") == RawCursor()


def test_contiguous_ranges_follow_the_sessions():
    days = [dt.date.fromisoformat(d) for d in ["2025-04-03", "2025-04-04", "2025-04-07", "2025-11-19", "2025-11-21",
                                               "2025-04-03"]]
    assert contiguous_ranges(days, KEYS) == [("2025-04-03", "2025-04-07"),
                                             ("2025-11-19", "2025-11-21")]


SP = ZoneInfo("America/Sao_Paulo")


@pytest.mark.parametrize(
    ("when", "partition", "reason"),
    [
        (dt.datetime(2025, 11, 21, 10, tzinfo=SP), "2025-11-21", "B3 session"),
        (dt.datetime(2025, 11, 20, 10, tzinfo=SP), None, "B3 holiday"),
        (dt.datetime(2025, 12, 24, 10, tzinfo=SP), None, "B3 holiday"),
        (dt.datetime(2025, 11, 22, 10, tzinfo=SP), None, "Saturday"),
        (dt.datetime(2025, 11, 23, 10, tzinfo=SP), None, "Sunday"),
    ],
)
def test_schedule_decision(when, partition, reason):
    key, text = schedule_decision(when)
    assert key == partition and reason in text
