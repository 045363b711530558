"""Importing past portfolios from real Carteira do Dia CSV files into raw partitions of a real local lake."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import pytest

from b3_dagster.storage.history_import import (
    NEAREST_SNAPSHOT,
    REFUSED,
    SECTORS_ASSIGNED_MARK,
    exit_code,
    format_outcome,
    import_files,
    is_sector_source,
)
from b3_dagster.model import META_SECTOR_SOURCE, PortfolioSnapshot
from b3_dagster.sources.b3_csv import parse_ibov_csv
from b3_dagster.sources.b3_portfolio import parse_page, rows_to_frame
from b3_dagster.storage.lake import LocalLake
from b3_dagster.storage.layout import raw_key
from b3_dagster.storage.portfolio_store import PortfolioStore
from b3_dagster.transforms.sector_refine import refine_portfolio, shipped_sector_mapping

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


# ---- standard files, sector_source "nearest-snapshot": sectors from one snapshot already in the lake -------------
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
    [outcome] = import_files([path], sectored_store, sector_source=NEAREST_SNAPSHOT)
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
        assert SECTORS_ASSIGNED_MARK + "raw " + covering[0].isoformat() in stored.source
        assert stored.sector_sources == {cod: f"raw:{covering[0]}" for cod in parsed.rows["cod"]}
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
    outcomes = import_files(STANDARD_FILES, sectored_store, sector_source=NEAREST_SNAPSHOT)
    written = [o for o in outcomes if o.status == "written"]
    refused = [o for o in outcomes if o.status == REFUSED]
    assert written and refused and len(written) + len(refused) == len(STANDARD_FILES)
    assert exit_code(outcomes) == 1
    # what the sensor will do next: the refine of an imported day sums to the whole index, one row per sector
    stored = sectored_store.read_raw(written[0].portfolio_date)
    refined = refine_portfolio(stored.rows, dt.date(2026, 1, 1))
    assert refined["total_codigo"].sum() == len(stored.rows)
    assert round(refined["soma_part"].sum(), 3) == 100.0
    # the refine's sectors are the canonical ones of B3's classification, whatever label the snapshot lent
    assert set(refined["Setor"]) == set(shipped_sector_mapping(stored.rows)["Setor"])


def test_labels_come_from_the_snapshot_and_a_standard_file_uses_a_sector_file_of_the_same_batch(store, tmp_path):
    """A standard download of the next session, listed before the by-sector file it needs."""
    sector_bytes = SECTOR_FILE.read_bytes()
    standard = replace_line(as_standard(sector_bytes), 1, b"IBOV - Carteira do Dia 11/07/24")
    standard_path = write(tmp_path, "IBOVDia_11-07-24.csv", standard)
    sector = parse_ibov_csv(sector_bytes, SECTOR_FILE.name)

    outcomes = import_files([standard_path, SECTOR_FILE], store, sector_source=NEAREST_SNAPSHOT)
    assert [o.status for o in outcomes] == ["written", "written"]  # in the order given
    assert outcomes[0].sector_snapshot == sector.portfolio_date
    stored = store.read_raw(dt.date(2024, 7, 11))
    assert list(stored.rows["segment"]) == list(sector.rows["segment"])  # the CSV's own spelling
    assert "Petróleo/ Gás e Biocombustíveis" in set(stored.rows["segment"])
    assert stored.rows["partAcum"].isna().all() and sector.rows["partAcum"].notna().all()
    assert "sectors from raw 2024-07-10" in format_outcome(outcomes[0])


def test_api_labels_are_taken_verbatim(store, recordings):
    store.write_raw(api_snapshot(recordings["2025-04-07"]))
    [outcome] = import_files([STANDARD_2025], store, sector_source=NEAREST_SNAPSHOT)
    assert outcome.status == "written"
    segments = set(store.read_raw(outcome.portfolio_date).rows["segment"])
    assert "Petróleo, Gás e Biocombustíveis" in segments and "Petróleo/ Gás e Biocombustíveis" not in segments


def test_without_any_sector_source_every_ticker_is_listed(store):
    parsed = parse_ibov_csv(STANDARD_2025.read_bytes(), STANDARD_2025.name)
    [outcome] = import_files([STANDARD_2025], store, sector_source=NEAREST_SNAPSHOT)
    assert outcome.status == REFUSED and store.raw_days() == []
    assert f"cannot place {len(parsed.rows)} ticker(s)" in outcome.reason
    assert "no raw snapshot with B3-published sectors" in outcome.reason


def test_assigned_sectors_are_never_reused(store, recordings, tmp_path):
    store.write_raw(api_snapshot(recordings["2025-04-07"]))
    march_17, march_10 = FIXTURES / "csv" / "IBOVDia_17-03-25.csv", FIXTURES / "csv" / "IBOVDia_10-03-25.csv"
    assert [o.status for o in import_files([march_17], store, sector_source=NEAREST_SNAPSHOT)] == ["written"]
    store.lake.delete([raw_key(dt.date(2025, 4, 7))])  # only the second-hand sectors of 2025-03-17 remain
    [outcome] = import_files([march_10], store, sector_source=NEAREST_SNAPSHOT)
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


@pytest.mark.slow  # 2.1 s (measured 2026-11-30, --durations=0)
def test_the_shipped_recordings_import_cleanly(store, recordings, tmp_path):
    """The README demo: the by-sector recordings and the standard ones, placed by the shipped classification (with
    nearest-snapshot they need the API answer of 2025-04-07 first)."""
    shipped = Path(__file__).resolve().parents[2] / "b3_dagster" / "recordings" / "b3_csv"
    sector_recordings = sorted(shipped.glob("*.csv"))
    standard_recordings = sorted((shipped / "standard").glob("*.csv"))
    assert len(sector_recordings) == 3 and standard_recordings
    for path in sector_recordings:
        assert path.read_bytes() == (FIXTURES / "csv_sector" / path.name).read_bytes()
    for path in standard_recordings:
        assert path.read_bytes() == (FIXTURES / "csv" / path.name).read_bytes()

    assert exit_code(import_files(sector_recordings, store)) == 0
    (tmp_path / "other").mkdir()
    other = PortfolioStore(LocalLake(tmp_path / "other"))
    assert exit_code(import_files(sector_recordings, other)) == 0
    assert exit_code(import_files(standard_recordings, other, sector_source=NEAREST_SNAPSHOT)) == 1  # none lists all
    other.write_raw(api_snapshot(recordings["2025-04-07"]))
    # the 2025-01..04 downloads: every ticker of each is in the 2025-04-07 answer
    early_2025 = [path for path in standard_recordings if path.name in {
        "IBOVDia_06-01-25.csv", "IBOVDia_24-02-25.csv", "IBOVDia_05-03-25.csv", "IBOVDia_10-03-25.csv",
        "IBOVDia_17-03-25.csv", "IBOVDia_28-04-25.csv"}]
    assert len(early_2025) == 6
    outcomes = import_files(early_2025, other, sector_source=NEAREST_SNAPSHOT)
    assert exit_code(outcomes) == 0 and {o.sector_snapshot for o in outcomes} == {dt.date(2025, 4, 7)}

    outcomes = import_files(standard_recordings, store)  # the default: B3's classification
    assert exit_code(outcomes) == 0 and all(o.status == "written" and o.placed_by for o in outcomes)


# ---- standard files, sector_source "classification" (the default): B3's own sector classification -----------------
SHARED_B3 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "b3"  # ../shared of the repo


def test_the_fixtures_are_the_shared_real_downloads():
    """The fixtures are byte-for-byte copies of ../shared/data/b3/{csv,csv_sector} (when that folder is present)."""
    if not SHARED_B3.is_dir():
        pytest.skip(f"{SHARED_B3} is not on this machine; the fixtures' provenance is in fixtures/SOURCES.md")
    for folder, fixtures in (("csv", STANDARD_FILES), ("csv_sector", SECTOR_FILES)):
        shared = sorted((SHARED_B3 / folder).glob("IBOVDia_*.csv"))
        assert [path.name for path in shared] == [path.name for path in fixtures]
        assert all(path.read_bytes() == (SHARED_B3 / folder / path.name).read_bytes() for path in fixtures)


def footer_total(path: Path) -> int:
    """The file's 'Quantidade Teórica Total' footer, read independently of the parser."""
    [line] = [line for line in path.read_bytes().decode("latin-1").splitlines()
              if line.startswith("Quantidade Teórica Total;")]
    return int(next(field for field in line.split(";")[1:] if field).replace(".", ""))


def test_every_real_download_imports_and_matches_its_file(store):
    """All 20 standard and 3 by-sector real downloads: rows, Σ part = 100 and Σ qty = the footer, in raw."""
    assert len(STANDARD_FILES) == 20 and len(SECTOR_FILES) == 3
    outcomes = import_files(STANDARD_FILES + SECTOR_FILES, store)
    assert [o.status for o in outcomes] == ["written"] * 23, [o.reason for o in outcomes if not o.ok]
    assert len(store.raw_days()) == 23
    for path, outcome in zip(STANDARD_FILES + SECTOR_FILES, outcomes):
        parsed = parse_ibov_csv(path.read_bytes(), path.name)
        stored = store.read_raw(outcome.portfolio_date)
        data_lines = len(path.read_bytes().splitlines()) - 4  # title, header and the two footers
        assert len(stored.rows) == outcome.rows == data_lines, path.name
        assert sum(round(part * 1000) for part in stored.rows["part"]) == 100_000, path.name
        assert int(stored.rows["theoricalQty"].sum()) == stored.theoretical_qty_total == footer_total(path)
        assert stored.rows["segment"].notna().all() and (stored.rows["segment"].str.strip() != "").all()
        assert stored.rows.drop(columns=["segment", "partAcum"]).equals(parsed.rows.drop(columns=["segment", "partAcum"]))
        if parsed.has_sectors:
            assert stored.sector_sources is None and is_sector_source(stored)
        else:
            assert set(stored.sector_sources) == set(parsed.rows["cod"]) and not is_sector_source(stored)
            assert all(how.startswith("classification:") for how in stored.sector_sources.values())
            assert stored.rows["partAcum"].isna().all()


def test_a_ticker_takes_its_roots_sector_from_the_vintage_valid_that_day_or_the_nearest(store):
    """15/12/2023: PETR from the 2023-09-20 vintage (valid that day); ALOS (Allos, listed after that vintage) from
    the nearest vintage that lists it, 2024-05-14."""
    path = FIXTURES / "csv" / "IBOVDia_15-12-23.csv"
    [outcome] = import_files([path], store)
    stored = store.read_raw(dt.date(2023, 12, 15))
    sources = stored.sector_sources
    segment = dict(zip(stored.rows["cod"], stored.rows["segment"]))
    assert sources["PETR4"] == "classification:2023-09-20:valid"
    assert segment["PETR4"] == "Petróleo, Gás e Biocombustíveis"  # the vintage's sector (= its subsector's name)
    assert segment["ITUB4"] == "Financeiro / Intermediários Financeiros"
    assert sources["ALOS3"] == "classification:2024-05-14:nearest"
    assert segment["ALOS3"] == "Financeiro / Exploração de Imóveis"
    assert outcome.placed_by == {"classification:2023-09-20:valid": len(stored.rows) - 1,
                                 "classification:2024-05-14:nearest": 1}
    assert "1 by nearest classification vintage" in format_outcome(outcome)
    assert SECTORS_ASSIGNED_MARK + "classification 2023-09-20 2024-05-14" in stored.source


def test_roots_only_in_the_derived_2026_workbook_are_placed_from_it(store):
    """March 2026: AXIA (ex-ELET) and EMBJ (ex-EMBR) are only in the fallback-only derived workbook."""
    [outcome] = import_files([FIXTURES / "csv" / "IBOVDia_24-03-26.csv"], store)
    sources = store.read_raw(dt.date(2026, 3, 24)).sector_sources
    fallback = {cod for cod, how in sources.items() if how.endswith(":fallback")}
    assert fallback and {cod[:4] for cod in fallback} == {"AXIA", "EMBJ"}
    assert outcome.status == "written"


def test_a_root_no_vintage_lists_takes_the_nearest_b3_snapshots_label(store):
    """A classification without PETR (hand-cut from the shipped one): PETR3/PETR4 are placed by the by-sector file of
    2024-07-10, whose own label they take; every other ticker by the classification."""
    from b3_dagster.sources.b3_classification import load_shipped_classification

    classification = load_shipped_classification()
    without_petr = classification[classification["codigo"] != "PETR"]
    import_files([SECTOR_FILE], store)
    path = FIXTURES / "csv" / "IBOVDia_26-04-24.csv"
    [outcome] = import_files([path], store, classification=without_petr)
    stored = store.read_raw(outcome.portfolio_date)
    petr = stored.rows[stored.rows["cod"].str.startswith("PETR")]
    assert len(petr) == 2 and set(petr["segment"]) == {"Petróleo/ Gás e Biocombustíveis"}
    assert {stored.sector_sources[cod] for cod in petr["cod"]} == {"raw:2024-07-10"}
    assert outcome.placed_by["raw:2024-07-10"] == 2


def test_a_file_is_refused_only_for_roots_no_source_knows(store, tmp_path):
    """Hand-made fault case: a real file with PETR4 renamed ZZZZ4 (sums unchanged). Refused, naming ticker and line."""
    data = STANDARD_2025.read_bytes()
    parsed = parse_ibov_csv(data, STANDARD_2025.name)
    line = parsed.lines["PETR4"]
    changed = write(tmp_path, "IBOVDia_06-01-25.csv", data.replace(b"\nPETR4;", b"\nZZZZ4;", 1))
    [outcome] = import_files([changed], store)
    assert outcome.status == REFUSED and store.raw_days() == []
    assert f"cannot place 1 ticker(s) in a sector: ZZZZ4 (line {line})" in outcome.reason
    assert "['ZZZZ']" in outcome.reason and str(changed) in outcome.reason


def test_a_standard_file_of_a_day_b3_already_published_with_sectors_is_unchanged(store, tmp_path):
    sector = parse_ibov_csv(SECTOR_FILE.read_bytes(), SECTOR_FILE.name)
    standard = write(tmp_path, "IBOVDia_10-07-24_standard.csv", as_standard(SECTOR_FILE.read_bytes()))
    assert import_files([SECTOR_FILE], store)[0].status == "written"
    before = store.lake.read_bytes(raw_key(sector.portfolio_date))
    [outcome] = import_files([standard], store)
    assert outcome.status == "unchanged" and outcome.sector_snapshot == sector.portfolio_date
    assert store.lake.read_bytes(raw_key(sector.portfolio_date)) == before


def test_raw_files_without_sector_source_metadata_still_read_and_compare(store):
    """Raw written before b3.sector_source existed (or by the API) reads with sector_sources None, and a snapshot that
    differs only by that metadata is the same portfolio."""
    parsed = parse_ibov_csv(SECTOR_FILE.read_bytes(), SECTOR_FILE.name)
    plain = PortfolioSnapshot(parsed.portfolio_date, parsed.rows, parsed.reductor, parsed.theoretical_qty_total)
    assert META_SECTOR_SOURCE not in plain.to_arrow().schema.metadata
    assert PortfolioSnapshot.from_arrow(plain.to_arrow()).sector_sources is None
    store.write_raw(plain)
    tagged = replace(plain, sector_sources={cod: "raw:2024-07-10" for cod in parsed.rows["cod"]})
    assert PortfolioSnapshot.from_arrow(tagged.to_arrow()).sector_sources == tagged.sector_sources
    assert store.write_raw(tagged).status == "unchanged"
