"""The raw layer of B3's index downloads (storage/b3_indices_store.py): both downloads of the index page land under
raw/index_history/, a shorter copy never replaces a longer one, a bad file is refused before anything is written."""

from __future__ import annotations

import pytest

from b3_dagster.errors import B3IndexHistoryError
from b3_dagster.sources.b3_index_history import recordings_dir
from b3_dagster.storage.b3_indices_store import B3IndicesStore
from b3_dagster.storage.lake import LocalLake

MONTHLY = recordings_dir() / "csv_evolucao_mensal"
IBOV_MONTHLY = MONTHLY / "Evolucao_Mensal_IBOVESPA_2014-2025_JulioZequin.csv"
IFIX_MONTHLY = MONTHLY / "Evolucao_Mensal_IFIX_2014-2025_python-crepaldi.csv"


@pytest.fixture
def store(tmp_path) -> B3IndicesStore:
    return B3IndicesStore(LocalLake(tmp_path / "lake"))


def test_every_shipped_monthly_download_lands_under_its_index_and_range(store):
    for path, index, months in ((IBOV_MONTHLY, "IBOV", 140), (IFIX_MONTHLY, "IFIX", 143)):
        written, held = store.write_history_csv(path.read_bytes(), path.name)
        assert written.status == "written" and f"{index} monthly closes, {months} months 2014-01.." in held
        assert written.key == f"raw/index_history/indice={index}/mensal/2014-01-01_2025-12-31.csv"
        assert store.lake.read_bytes(written.key) == path.read_bytes()
    rows, sources = store.monthly()
    assert rows.groupby("indice").size().to_dict() == {"IBOV": 140, "IFIX": 143} and len(sources) == 2
    assert store.monthly(["IFIX"])[0]["indice"].unique().tolist() == ["IFIX"]
    # the daily closes are not disturbed: a monthly download is no (index, year) source of index_closes
    assert store.history_keys() == []


def test_the_same_download_again_is_a_no_op_and_an_earlier_shorter_one_is_kept_out(store):
    data = IBOV_MONTHLY.read_bytes()
    store.write_history_csv(data, IBOV_MONTHLY.name)
    assert store.write_history_csv(data, IBOV_MONTHLY.name)[0].status == "unchanged"
    earlier = data.rstrip(b"\n").rsplit(b"\n", 1)[0] + b"\n"  # hand-made: the same file a month earlier
    written, _ = store.write_history_csv(earlier, "Evolucao_Mensal_earlier.csv")
    assert written.status == "kept (the stored download has 140 months)"
    assert store.lake.read_bytes(written.key) == data


def test_a_damaged_monthly_download_is_refused_naming_the_line_and_nothing_is_written(store):
    data = IBOV_MONTHLY.read_bytes().replace(b"3;2021;116.633,72", b"3;2021;116,633.72")  # hand-made fault
    with pytest.raises(B3IndexHistoryError, match=r"damaged.csv, line 90, field 'Valor'"):
        store.write_history_csv(data, "damaged.csv")
    assert store.monthly()[0].empty and not list(store.lake.list("raw/"))


def _api_portfolio_rows(date: str):
    """IBOV's rows of a recorded GetPortfolioDay answer, shaped as index_portfolio_raw hands them to the store."""
    from b3_dagster.model import EVENT_FLAG, INDEX_CODE, LISTING_SEGMENT, SHARE_CLASS
    from b3_dagster.replay.b3_api import recorded_days
    from b3_dagster.sources.b3_index_csv import split_type
    from b3_dagster.sources.b3_portfolio import parse_page, rows_to_frame

    recording = next(r for r in recorded_days() if r.date == date)
    rows = rows_to_frame(parse_page(recording.path.read_bytes(), page=1, language=recording.language).rows)
    rows.insert(0, INDEX_CODE, "IBOV")
    rows[SHARE_CLASS], rows[EVENT_FLAG], rows[LISTING_SEGMENT] = zip(*rows["type"].map(split_type))
    return rows


def test_the_same_api_portfolio_through_another_url_is_kept_and_changed_rows_replace_it(store):
    rows = _api_portfolio_rows("2022-12-08")
    first = store.write_api_portfolio("IBOV", rows, "http://127.0.0.1:40001/GetPortfolioDay {}")
    stored = store.lake.read_bytes(first.key)
    again = store.write_api_portfolio("IBOV", rows, "http://127.0.0.1:40002/GetPortfolioDay {}")  # a new replay port
    assert (first.status, again.status) == ("written", "unchanged") and again.archived is None
    assert store.lake.read_bytes(first.key) == stored, "the stored object is kept as it was, its source included"
    changed = rows.assign(part=rows["part"].where(rows.index != 0, rows["part"] + 0.001))
    replaced = store.write_api_portfolio("IBOV", changed, "http://127.0.0.1:40003/GetPortfolioDay {}")
    assert replaced.status == "replaced" and replaced.archived and store.lake.exists(replaced.archived)
