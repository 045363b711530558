"""Classification workbooks in a real local lake: stored as served, dropped files picked up, bad ones named."""

from __future__ import annotations

import datetime as dt

import pytest

from b3_dagster.errors import ClassificationConflict, ClassificationError
from b3_dagster.sources.b3_classification import SHIPPED_ROOT
from b3_dagster.storage.classification_store import (
    CLASSIFICATION_PREFIX,
    ClassificationStore,
)
from b3_dagster.storage.lake import LocalLake

ZIP_2022 = SHIPPED_ROOT / "zip" / "ClassifSetorial_2022-06-24.zip"
NEW_2025 = SHIPPED_ROOT / "xlsx" / "ClassifSetorial_newformat_committed-2025-10-31.xlsx"
LEGACY_2025 = SHIPPED_ROOT / "xlsx" / "ClassifSetorial_2025-03-10.xlsx"


@pytest.fixture
def store(lake_root) -> ClassificationStore:
    return ClassificationStore(LocalLake(lake_root))


def test_a_live_download_is_kept_as_served_and_once(store):
    day = dt.date(2026, 11, 30)
    first = store.add(NEW_2025.read_bytes(), "GetDownloadIndustryClassification_2026-11-30.xlsx", valid_from=day)
    assert first.status == "written"
    assert first.key == f"{CLASSIFICATION_PREFIX}vigente_desde=2026-11-30/GetDownloadIndustryClassification_2026-11-30.xlsx"
    assert store.lake.read_bytes(first.key) == NEW_2025.read_bytes()
    again = store.add(NEW_2025.read_bytes(), "GetDownloadIndustryClassification_2026-11-30.xlsx", valid_from=day)
    assert again.status == "unchanged"
    with pytest.raises(ClassificationConflict, match="vintage 2026-11-30"):
        store.add(LEGACY_2025.read_bytes(), "GetDownloadIndustryClassification_2026-11-30.xlsx", valid_from=day)
    assert store.lake.read_bytes(first.key) == NEW_2025.read_bytes()


def test_a_bad_file_is_refused_and_nothing_is_written(store):
    with pytest.raises(ClassificationError, match="not an .xlsx or .zip"):
        store.add(b"<html>erro</html>", "ClassifSetorial_2026-01-02.xlsx")
    assert store.keys() == []


def test_dropped_workbooks_are_picked_up_and_an_undated_one_is_named(store):
    store.lake.write_bytes(CLASSIFICATION_PREFIX + "ClassifSetorial.zip", ZIP_2022.read_bytes())  # B3's own name
    store.lake.write_bytes(CLASSIFICATION_PREFIX + "ClassifSetorial.xlsx", NEW_2025.read_bytes())  # no date at all
    store.lake.write_bytes(CLASSIFICATION_PREFIX + "vigente_desde=2026-11-30/ClassifSetorial.xlsx",
                           NEW_2025.read_bytes())
    found = store.vintages()
    assert sorted(v.valid_from for v in found.vintages) == [dt.date(2022, 6, 24), dt.date(2026, 11, 30)]
    [error] = found.errors
    assert f"{CLASSIFICATION_PREFIX}ClassifSetorial.xlsx" in error and "no vintage date" in error


def test_the_history_adds_the_lakes_vintages_to_the_shipped_ones(store):
    shipped, errors = store.history()
    assert errors == [] and shipped["vigente_desde"].nunique() == 12
    store.add(ZIP_2022.read_bytes(), ZIP_2022.name)  # the same vintage as a shipped one: not counted twice
    store.add(NEW_2025.read_bytes(), "live.xlsx", valid_from=dt.date(2026, 11, 30))
    history, errors = store.history()
    assert errors == [] and history["vigente_desde"].nunique() == 13 and len(history) == len(shipped) + 378
    only_lake, _ = store.history(include_shipped=False)
    assert sorted(set(only_lake["vigente_desde"])) == [dt.date(2022, 6, 24), dt.date(2026, 11, 30)]


def test_the_shipped_parses_are_remembered_by_digest_and_a_damaged_entry_is_parsed_again(store):
    from b3_dagster.sources.b3_classification import load_shipped_classification
    from b3_dagster.storage.classification_store import PARSED_CACHE_PREFIX

    parsed = load_shipped_classification()
    first, _ = store.history()
    entries = [info.key for info in store.lake.list(PARSED_CACHE_PREFIX)]
    assert len(entries) == len(set(parsed["source_file"])), "one remembered parse per shipped workbook"
    again, errors = store.history()
    assert errors == [] and again.equals(first) and again.dtypes.equals(first.dtypes)
    assert store.vintages().vintages == [], "the remembered parses are not taken for dropped workbooks"

    store.lake.write_bytes(entries[0], b"PAR1 cut short")
    damaged, _ = store.history()
    assert damaged.equals(first)
    assert store.lake.read_bytes(entries[0]).startswith(b"PAR1") and len(store.lake.read_bytes(entries[0])) > 100
