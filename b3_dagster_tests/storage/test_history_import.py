"""Importing past portfolios from real Carteira do Dia CSV files into raw partitions of a real local lake."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from b3_dagster.history_import import (
    REFUSED,
    SECTORS_ASSIGNED_MARK,
    exit_code,
    format_outcome,
    import_files,
    is_sector_source,
)
from b3_dagster.model import PortfolioSnapshot
from b3_dagster.sources.b3_csv import parse_ibov_csv
from b3_dagster.sources.b3_portfolio import parse_page, rows_to_frame
from b3_dagster.storage.lake import LocalLake
from b3_dagster.storage.layout import raw_key
from b3_dagster.storage.portfolio_store import PortfolioStore
from b3_dagster.transforms.sectors import refine_portfolio

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "b3_csv"
STANDARD_FILES = sorted((FIXTURES / "csv").glob("IBOVDia_*.csv"))
SECTOR_FILES = sorted((FIXTURES / "csv_sector").glob("IBOVDia_*.csv"))
SECTOR_FILE = FIXTURES / "csv_sector" / "IBOVDia_10-07-24.csv"
STANDARD_2025 = FIXTURES / "csv" / "IBOVDia_06-01-25.csv"


@pytest.fixture
def store(lake_root) -> PortfolioStore:
    return PortfolioStore(LocalLake(lake_root))


def api_snapshot(recording) -> PortfolioSnapshot:
    page = parse_page(recording.path.read_bytes(), page=1, language=recording.language)
    return PortfolioSnapshot(page.portfolio_date, rows_to_frame(page.rows), page.reductor,
                             page.theoretical_qty_total, source=recording.path.name)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def replace_line(data: bytes, number: int, new: bytes) -> bytes:
    lines = data.split(b"\n")
    lines[number - 1] = new
    return b"\n".join(lines)


def as_standard(sector_file: bytes) -> bytes:
    """The standard layout of a by-sector download: drop Setor and Part. (%)Acum. and the footers' extra fields.

    Only used to build a same-batch case from real bytes: the two layouts carry the same rows."""
    out = []
    for line in sector_file.decode("latin-1").split("\r\n" if b"\r\n" in sector_file else "\n"):
        fields = line.split(";")
        if len(fields) == 8:  # a data row: Setor;Código;Ação;Tipo;Qtde;Part;Acum;
            fields = fields[1:6] + [""]
        elif len(fields) == 7:  # header or total footer
            fields = fields[1:6] if fields[0] == "Setor" else fields[:1] + fields[2:6]
        elif len(fields) == 5:  # reductor footer
            fields = fields[:1] + fields[2:]
        out.append(";".join(fields))
    return "\n".join(out).encode("latin-1")


# ---- by-sector files --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", SECTOR_FILES, ids=lambda path: path.name)
def test_a_sector_file_is_written_once_and_then_unchanged(store, path):
    parsed = parse_ibov_csv(path.read_bytes(), path.name)
    [first] = import_files([path], store)
    assert (first.status, first.portfolio_date, first.rows) == ("written", parsed.portfolio_date, len(parsed.rows))
    stored = store.read_raw(parsed.portfolio_date)
    assert stored.rows.equals(parsed.rows)  # sectors and B3's partAcum kept verbatim
    assert (stored.reductor, stored.theoretical_qty_total) == (parsed.reductor, parsed.theoretical_qty_total)
    assert path.name in stored.source and is_sector_source(stored)
    stored_bytes = store.lake.read_bytes(raw_key(parsed.portfolio_date))

    [again] = import_files([path], store)
    assert again.status == "unchanged" and again.ok
    assert store.lake.read_bytes(raw_key(parsed.portfolio_date)) == stored_bytes


def changed_but_valid(data: bytes) -> bytes:
    """Move 0,001 of weight between two rows of the same sector: every check still passes, but the data differ."""
    lines = data.split(b"\n")
    fields = [line.rstrip(b"\r").split(b";") for line in lines]
    n = next(n for n in range(2, len(lines) - 3) if len(fields[n]) == 8 and fields[n][0] == fields[n + 1][0])
    for row, delta in ((fields[n], 1), (fields[n + 1], -1)):
        weight = round(float(row[5].replace(b",", b".")) * 1000) + delta
        row[5] = f"{weight // 1000},{weight % 1000:03d}".encode()
    ending = b"\r" if lines[n].endswith(b"\r") else b""
    lines[n], lines[n + 1] = b";".join(fields[n]) + ending, b";".join(fields[n + 1]) + ending
    return b"\n".join(lines)


def test_reimporting_different_data_is_refused_and_keeps_the_partition(store, tmp_path):
    original = SECTOR_FILE.read_bytes()
    changed = changed_but_valid(original)
    assert changed != original
    parse_ibov_csv(changed, "changed.csv")  # valid on its own: same sums, same sector subtotals

    [written] = import_files([SECTOR_FILE], store)
    day = written.portfolio_date
    before = store.lake.read_bytes(raw_key(day))
    changed_path = write(tmp_path, "IBOVDia_10-07-24_other.csv", changed)
    [refused] = import_files([changed_path], store)
    assert refused.status == REFUSED and not refused.ok
    assert str(changed_path) in refused.reason and "already exists" in refused.reason
    assert store.lake.read_bytes(raw_key(day)) == before

    [replaced] = import_files([changed_path], store, allow_overwrite=True)
    assert replaced.status == "replaced" and "archive" in replaced.reason
    assert store.read_raw(day).rows.equals(parse_ibov_csv(changed, "changed.csv").rows)
    assert any(info.key.startswith("archive/") for info in store.lake.list("archive/"))


# ---- standard files: sectors from a snapshot already in the lake ------------------------------------------------
@pytest.fixture
def sectored_store(store, recordings) -> PortfolioStore:
    """A lake holding every real sector source we have: the three by-sector files and the 2025-04-07 API answer
    (the 2022-12-08 recording lost its accents, so it is no sector source; it is there to prove that)."""
    assert [o.status for o in import_files(SECTOR_FILES, store)] == ["written"] * 3
    for day in ("2025-04-07", "2022-12-08"):
        store.write_raw(api_snapshot(recordings[day]))
    return store


def sector_sources(store: PortfolioStore) -> dict[dt.date, PortfolioSnapshot]:
    snapshots = {day: store.read_raw(day) for day in store.raw_days()}
    return {day: snapshot for day, snapshot in snapshots.items() if is_sector_source(snapshot)}


def test_the_damaged_recording_is_not_a_sector_source(sectored_store):
    assert dt.date(2022, 12, 8) in sectored_store.raw_days()
    assert sorted(sector_sources(sectored_store)) == [dt.date(2023, 1, 17), dt.date(2024, 7, 10),
                                                      dt.date(2024, 7, 26), dt.date(2025, 4, 7)]


@pytest.mark.parametrize("path", STANDARD_FILES, ids=lambda path: path.name)
def test_a_standard_file_is_placed_from_one_snapshot_or_refused_with_its_tickers(sectored_store, path):
    sources = sector_sources(sectored_store)
    parsed = parse_ibov_csv(path.read_bytes(), path.name)
    [outcome] = import_files([path], sectored_store)
    day = parsed.portfolio_date
    by_distance = sorted(sources, key=lambda other: (abs((other - day).days), other))
    covering = [other for other in by_distance if set(parsed.rows["cod"]) <= set(sources[other].rows["cod"])]

    if covering:
        assert outcome.status == "written" and outcome.sector_snapshot == covering[0]
        stored = sectored_store.read_raw(day)
        labels = dict(zip(sources[covering[0]].rows["cod"], sources[covering[0]].rows["segment"]))
        assert list(stored.rows["segment"]) == [labels[cod] for cod in parsed.rows["cod"]]
        assert stored.rows["partAcum"].isna().all()  # B3 published no subtotal for these rows
        assert stored.rows.drop(columns=["segment"]).equals(parsed.rows.drop(columns=["segment"]))
        assert SECTORS_ASSIGNED_MARK + covering[0].isoformat() in stored.source
        assert not is_sector_source(stored)
    else:
        nearest = sources[by_distance[0]]
        missing = [cod for cod in parsed.rows["cod"] if cod not in set(nearest.rows["cod"])]
        assert outcome.status == REFUSED and day not in sectored_store.raw_days()
        assert path.name in outcome.reason and str(by_distance[0]) in outcome.reason
        for cod in missing:
            assert f"{cod} (line {parsed.lines[cod]})" in outcome.reason
        assert f"cannot place {len(missing)} ticker(s)" in outcome.reason


def test_the_real_files_exercise_both_branches(sectored_store):
    outcomes = import_files(STANDARD_FILES, sectored_store)
    written = [o for o in outcomes if o.status == "written"]
    refused = [o for o in outcomes if o.status == REFUSED]
    assert written and refused and len(written) + len(refused) == len(STANDARD_FILES)
    assert exit_code(outcomes) == 1
    # what the sensor will do next: the refine of an imported day sums to the whole index, one row per sector
    stored = sectored_store.read_raw(written[0].portfolio_date)
    refined = refine_portfolio(stored.rows, dt.date(2026, 1, 1))
    assert refined["total_codigo"].sum() == len(stored.rows)
    assert round(refined["soma_part"].sum(), 3) == 100.0
    assert set(refined["Setor"]) == set(stored.rows["segment"])


def test_labels_come_from_the_snapshot_and_a_standard_file_uses_a_sector_file_of_the_same_batch(store, tmp_path):
    """A standard download of the next session, listed before the by-sector file it needs."""
    sector_bytes = SECTOR_FILE.read_bytes()
    standard = replace_line(as_standard(sector_bytes), 1, b"IBOV - Carteira do Dia 11/07/24")
    standard_path = write(tmp_path, "IBOVDia_11-07-24.csv", standard)
    sector = parse_ibov_csv(sector_bytes, SECTOR_FILE.name)

    outcomes = import_files([standard_path, SECTOR_FILE], store)
    assert [o.status for o in outcomes] == ["written", "written"]  # in the order given
    assert outcomes[0].sector_snapshot == sector.portfolio_date
    stored = store.read_raw(dt.date(2024, 7, 11))
    assert list(stored.rows["segment"]) == list(sector.rows["segment"])  # the CSV's own spelling
    assert "Petróleo/ Gás e Biocombustíveis" in set(stored.rows["segment"])
    assert stored.rows["partAcum"].isna().all() and sector.rows["partAcum"].notna().all()
    assert "sectors from raw 2024-07-10" in format_outcome(outcomes[0])


def test_api_labels_are_taken_verbatim(store, recordings):
    store.write_raw(api_snapshot(recordings["2025-04-07"]))
    [outcome] = import_files([STANDARD_2025], store)
    assert outcome.status == "written"
    segments = set(store.read_raw(outcome.portfolio_date).rows["segment"])
    assert "Petróleo, Gás e Biocombustíveis" in segments and "Petróleo/ Gás e Biocombustíveis" not in segments


def test_without_any_sector_source_every_ticker_is_listed(store):
    parsed = parse_ibov_csv(STANDARD_2025.read_bytes(), STANDARD_2025.name)
    [outcome] = import_files([STANDARD_2025], store)
    assert outcome.status == REFUSED and store.raw_days() == []
    assert f"cannot place {len(parsed.rows)} ticker(s)" in outcome.reason
    assert "no raw snapshot with B3-published sectors" in outcome.reason


def test_assigned_sectors_are_never_reused(store, recordings, tmp_path):
    store.write_raw(api_snapshot(recordings["2025-04-07"]))
    march_17, march_10 = FIXTURES / "csv" / "IBOVDia_17-03-25.csv", FIXTURES / "csv" / "IBOVDia_10-03-25.csv"
    assert [o.status for o in import_files([march_17], store)] == ["written"]
    store.lake.delete([raw_key(dt.date(2025, 4, 7))])  # only the second-hand sectors of 2025-03-17 remain
    [outcome] = import_files([march_10], store)
    assert outcome.status == REFUSED and "no raw snapshot with B3-published sectors" in outcome.reason


def test_sector_source_none_refuses_standard_files_only(store):
    outcomes = import_files([STANDARD_2025, SECTOR_FILE], store, sector_source="none")
    assert [o.status for o in outcomes] == [REFUSED, "written"]
    assert "sector_source is 'none'" in outcomes[0].reason


def test_sector_source_can_name_a_partition(sectored_store):
    parsed = parse_ibov_csv(STANDARD_2025.read_bytes(), STANDARD_2025.name)
    [refused] = import_files([STANDARD_2025], sectored_store, sector_source="2024-07-26")
    assert refused.status == REFUSED and "2024-07-26" in refused.reason
    missing = set(parsed.rows["cod"]) - set(sectored_store.read_raw(dt.date(2024, 7, 26)).rows["cod"])
    assert missing and all(cod in refused.reason for cod in missing)
    [written] = import_files([STANDARD_2025], sectored_store, sector_source=dt.date(2025, 4, 7))
    assert written.status == "written" and written.sector_snapshot == dt.date(2025, 4, 7)


def test_a_bad_sector_source_argument_is_a_programming_error(store):
    with pytest.raises(ValueError, match="sector_source"):
        import_files([SECTOR_FILE], store, sector_source="closest")


# ---- batches with bad files --------------------------------------------------------------------------------------
def test_one_bad_file_does_not_stop_the_batch_and_nothing_of_it_is_written(store, tmp_path):
    data = SECTOR_FILE.read_bytes()
    holiday = write(tmp_path, "IBOVDia_20-11-25.csv", replace_line(data, 1, b"IBOV - Carteira do Dia 20/11/25\r"))
    bad_number = write(tmp_path, "bad_number.csv", data.replace(b";3,161;3,161;", b";3,1x1;3,161;", 1))
    missing = tmp_path / "no_such_file.csv"
    good = [path for path in SECTOR_FILES if path != SECTOR_FILE]

    outcomes = import_files([holiday, good[0], bad_number, missing, good[1]], store)
    assert [o.status for o in outcomes] == [REFUSED, "written", REFUSED, REFUSED, "written"]
    assert f"{holiday}, line 1" in outcomes[0].reason and "not a B3 session" in outcomes[0].reason
    assert f"{bad_number}, line 3" in outcomes[2].reason and "Part. (%)" in outcomes[2].reason
    assert str(missing) in outcomes[3].reason
    assert exit_code(outcomes) == 1 and exit_code([outcomes[1], outcomes[4]]) == 0
    assert store.raw_days() == sorted(o.portfolio_date for o in (outcomes[1], outcomes[4]))
    assert str(holiday) in format_outcome(outcomes[0]) and "line 1" in format_outcome(outcomes[0])


def test_the_same_file_twice_in_one_batch(store, tmp_path):
    copy = write(tmp_path, "copy.csv", SECTOR_FILE.read_bytes())
    assert [o.status for o in import_files([SECTOR_FILE, copy], store)] == ["written", "unchanged"]


def test_the_shipped_recordings_import_cleanly(store, recordings, tmp_path):
    """The README demo: the by-sector recordings, then the standard ones once the API answer of 2025-04-07 is in."""
    shipped = Path(__file__).resolve().parents[2] / "b3_dagster" / "recordings" / "b3_csv"
    sector_recordings = sorted(shipped.glob("*.csv"))
    standard_recordings = sorted((shipped / "standard").glob("*.csv"))
    assert len(sector_recordings) == 3 and standard_recordings
    for path in sector_recordings:
        assert path.read_bytes() == (FIXTURES / "csv_sector" / path.name).read_bytes()
    for path in standard_recordings:
        assert path.read_bytes() == (FIXTURES / "csv" / path.name).read_bytes()

    assert exit_code(import_files(sector_recordings, store)) == 0
    assert exit_code(import_files(standard_recordings, store)) == 1  # no snapshot places them yet
    store.write_raw(api_snapshot(recordings["2025-04-07"]))
    outcomes = import_files(standard_recordings, store)
    assert exit_code(outcomes) == 0 and {o.sector_snapshot for o in outcomes} == {dt.date(2025, 4, 7)}
