"""Import past IBOV portfolios from B3's "Carteira do Dia" CSV downloads into raw partitions.

B3's API serves only the current portfolio; past days come from the ``IBOVDia_DD-MM-YY.csv`` files users download
from B3's site. Each file is parsed and validated by ``b3_dagster.sources.b3_csv`` and written through
``PortfolioStore.write_raw``, so an existing partition is never replaced by different data (identical data is
"unchanged"). One bad file is reported as "refused" with its reason; the others are still imported.

Sectors. The by-sector download carries them (and B3's ``Part. (%)Acum.``). The standard download has no sector
column, so its rows are placed with the sector *labels of one raw snapshot already in the lake* (``sector_source``):

* ``"nearest-snapshot"`` (default): the raw partition closest in time (before or after; the earlier one on a tie)
  whose sectors came from B3 itself (the API or a by-sector file) and that lists *every* ticker of the file. Each row
  takes that snapshot's label for its ticker, verbatim: a standard file placed from an API snapshot gets the API's
  spelling (``Petróleo, Gás e Biocombustíveis``), one placed from a by-sector CSV the CSV's
  (``Petróleo/ Gás e Biocombustíveis``). Using a single snapshot keeps one day's labels from one vocabulary.
  Snapshots whose own sectors were assigned this way are never used (no second-hand sectors), nor are snapshots
  whose labels were damaged in recording (U+FFFD).
* a date (``"2024-07-10"`` or ``datetime.date``): that raw partition only.
* ``"none"``: standard files are refused; only by-sector files are imported.

When no snapshot places every ticker the file is refused, listing the tickers (and their lines) that the nearest
snapshot lacks: a sector is never guessed. ``partAcum`` of placed rows is left null: in raw it means B3's own subtotal
of the sector, which the standard file does not carry; the refined ``soma_part`` is computed from ``part`` anyway,
and recomputing ``partAcum`` would make the ``soma_part`` vs ``partAcum`` check compare a number with itself.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field, replace
from typing import Iterable, Union

from b3_dagster.model import PortfolioSnapshot
from b3_dagster.sources.b3_csv import B3CsvError, IbovCsv, parse_ibov_csv, read_file
from b3_dagster.storage.portfolio_store import (
    PortfolioStore,
    RawPartitionConflict,
    RawPartitionMissing,
    UnreadableObject,
)

NEAREST_SNAPSHOT = "nearest-snapshot"
NO_SECTOR_SOURCE = "none"
SectorSource = Union[str, dt.date]
# Appended to a raw snapshot's source when its sectors were assigned here; such snapshots are never a sector source.
SECTORS_ASSIGNED_MARK = "; sectors assigned from raw "
DAMAGED_TEXT = "\ufffd"

WRITTEN, UNCHANGED, REPLACED, REFUSED = "written", "unchanged", "replaced", "refused"


class UnplaceableTickers(Exception):
    """A standard file whose tickers cannot all be placed in a sector from the chosen sector source."""

    def __init__(self, file: str, tickers: dict[str, int], message: str):
        listed = ", ".join(f"{cod} (line {line})" for cod, line in tickers.items())
        super().__init__(f"{file}: cannot place {len(tickers)} ticker(s) in a sector: {listed}. {message}")
        self.file = file
        self.tickers = tickers


@dataclass(frozen=True)
class ImportOutcome:
    path: str
    status: str  # written | unchanged | replaced | refused
    portfolio_date: dt.date | None = None
    rows: int = 0
    uri: str | None = None
    reason: str | None = None  # why it was refused (or what was archived when replaced)
    sector_snapshot: dt.date | None = None  # the raw partition whose labels placed a standard file's rows
    conflict: bool = False  # refused because the partition holds different data (allow_overwrite replaces it)
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return self.status != REFUSED


def _check_sector_source(sector_source: SectorSource) -> SectorSource:
    if isinstance(sector_source, dt.date) or sector_source in (NEAREST_SNAPSHOT, NO_SECTOR_SOURCE):
        return sector_source
    try:
        return dt.date.fromisoformat(sector_source)
    except (TypeError, ValueError):
        raise ValueError(f"sector_source must be {NEAREST_SNAPSHOT!r}, {NO_SECTOR_SOURCE!r} or a YYYY-MM-DD date, "
                         f"not {sector_source!r}") from None


def is_sector_source(snapshot: PortfolioSnapshot) -> bool:
    """True when the snapshot's sectors were published by B3 (not assigned by an import) and are intact."""
    segments = snapshot.rows["segment"]
    return (SECTORS_ASSIGNED_MARK not in snapshot.source and bool(len(segments))
            and segments.notna().all() and not segments.str.contains(DAMAGED_TEXT, regex=False).any())


def assign_sectors(parsed: IbovCsv, sectors: PortfolioSnapshot) -> PortfolioSnapshot:
    """A standard file's rows placed with ``sectors``' label for each ticker; ``partAcum`` stays null."""
    label_of = dict(zip(sectors.rows["cod"], sectors.rows["segment"]))
    missing = {cod: line for cod, line in parsed.lines.items() if cod not in label_of}
    if missing:
        raise UnplaceableTickers(parsed.name, missing, f"The raw snapshot of {sectors.portfolio_date} lacks them.")
    rows = parsed.rows.copy()
    rows["segment"] = rows["cod"].map(label_of)
    return PortfolioSnapshot(
        portfolio_date=parsed.portfolio_date,
        rows=rows,
        reductor=parsed.reductor,
        theoretical_qty_total=parsed.theoretical_qty_total,
        source=f"{parsed.source}{SECTORS_ASSIGNED_MARK}{sectors.portfolio_date.isoformat()}",
        warnings=parsed.warnings,
    )


class _SnapshotReader:
    """Reads raw snapshots once per import batch; forgets a day when the batch writes it."""

    def __init__(self, store: PortfolioStore):
        self.store = store
        self._cache: dict[dt.date, PortfolioSnapshot | None] = {}
        self.warnings: list[str] = []

    def read(self, day: dt.date) -> PortfolioSnapshot | None:
        if day not in self._cache:
            try:
                self._cache[day] = self.store.read_raw(day)
            except RawPartitionMissing:
                self._cache[day] = None
            except UnreadableObject as error:
                self.warnings.append(f"raw partition {day} skipped as a sector source: {error}")
                self._cache[day] = None
        return self._cache[day]

    def forget(self, day: dt.date) -> None:
        self._cache.pop(day, None)


def choose_sector_snapshot(parsed: IbovCsv, reader: _SnapshotReader, sector_source: SectorSource) -> PortfolioSnapshot:
    """The raw snapshot whose labels place ``parsed``'s rows (see the module docstring), or ``UnplaceableTickers``."""
    everything = dict(parsed.lines)
    if sector_source == NO_SECTOR_SOURCE:
        raise UnplaceableTickers(parsed.name, everything, "The standard download has no sector column and "
                                 "sector_source is 'none'; import the by-sector download of that day instead.")
    day = parsed.portfolio_date
    if isinstance(sector_source, dt.date):
        candidates = [sector_source]
    else:
        candidates = sorted(reader.store.raw_days(), key=lambda other: (abs((other - day).days), other))
    nearest = None
    for candidate in candidates:
        snapshot = reader.read(candidate)
        if snapshot is None or not is_sector_source(snapshot):
            continue
        nearest = nearest or snapshot
        if set(parsed.lines) <= set(snapshot.rows["cod"]):
            return snapshot
    if nearest is None:
        where = (f"raw partition {sector_source} is missing or has no B3-published sectors"
                 if isinstance(sector_source, dt.date) else "the lake has no raw snapshot with B3-published sectors")
        raise UnplaceableTickers(parsed.name, everything, f"The standard download has no sector column and {where}"
                                 "; import a by-sector download (or run the API) first.")
    missing = {cod: line for cod, line in parsed.lines.items() if cod not in set(nearest.rows["cod"])}
    days = (nearest.portfolio_date - day).days
    chosen = "chosen" if isinstance(sector_source, dt.date) else "nearest"
    scope = "" if isinstance(sector_source, dt.date) else " and no other raw snapshot lists every ticker"
    raise UnplaceableTickers(parsed.name, missing, f"The {chosen} raw snapshot with sectors ({nearest.portfolio_date}, "
                             f"{abs(days)} day(s) {'after' if days > 0 else 'before'}) lacks them{scope}. Import a "
                             "by-sector download of a nearby date first; no sector is guessed.")


def _snapshot_of(parsed: IbovCsv, reader: _SnapshotReader,
                 sector_source: SectorSource) -> tuple[PortfolioSnapshot, dt.date | None]:
    """The raw snapshot to write, and the day whose labels placed a standard file's rows (None for by-sector)."""
    if parsed.has_sectors:
        return PortfolioSnapshot(portfolio_date=parsed.portfolio_date, rows=parsed.rows, reductor=parsed.reductor,
                                 theoretical_qty_total=parsed.theoretical_qty_total, source=parsed.source,
                                 warnings=parsed.warnings), None
    sectors = choose_sector_snapshot(parsed, reader, sector_source)
    return assign_sectors(parsed, sectors), sectors.portfolio_date


def _import_parsed(path: str, parsed: IbovCsv, reader: _SnapshotReader, allow_overwrite: bool,
                   sector_source: SectorSource) -> ImportOutcome:
    seen_warnings = len(reader.warnings)
    base = ImportOutcome(path, REFUSED, parsed.portfolio_date, len(parsed.rows))
    try:
        snapshot, sector_day = _snapshot_of(parsed, reader, sector_source)
        base = replace(base, sector_snapshot=sector_day)
        written = reader.store.write_raw(snapshot, allow_overwrite=allow_overwrite)
    except UnplaceableTickers as error:
        outcome = replace(base, reason=str(error))
    except RawPartitionConflict as error:
        outcome = replace(base, reason=f"{path}: {error}", conflict=True)
    else:
        reader.forget(parsed.portfolio_date)
        reason = f"previous data archived at {written.archived_key}" if written.archived_key else None
        outcome = replace(base, status=written.status, uri=written.uri, reason=reason)
    return replace(outcome, warnings=parsed.warnings + tuple(reader.warnings[seen_warnings:]))


def import_files(paths: Iterable[str | os.PathLike], store: PortfolioStore, allow_overwrite: bool = False,
                 sector_source: SectorSource = NEAREST_SNAPSHOT) -> list[ImportOutcome]:
    """Import Carteira do Dia CSV files into raw partitions; one outcome per path, in the order given.

    By-sector files are imported first (oldest first), so standard files of the same batch can take their sector
    labels from them. Nothing is raised for a bad file: it is reported as refused, with the file and line at fault.
    ``allow_overwrite`` replaces a partition holding different data (the old file is archived by the store).
    """
    sector_source = _check_sector_source(sector_source)
    paths = [os.fspath(path) for path in paths]
    outcomes: dict[int, ImportOutcome] = {}
    parsed_files: dict[int, IbovCsv] = {}
    for position, path in enumerate(paths):
        try:
            parsed_files[position] = parse_ibov_csv(read_file(path), path)
        except B3CsvError as error:
            outcomes[position] = ImportOutcome(path, REFUSED, reason=str(error))
        except OSError as error:
            outcomes[position] = ImportOutcome(path, REFUSED, reason=f"{path}: cannot read the file: {error}")

    reader = _SnapshotReader(store)
    order = sorted(parsed_files, key=lambda i: (not parsed_files[i].has_sectors, parsed_files[i].portfolio_date, i))
    for position in order:
        outcomes[position] = _import_parsed(paths[position], parsed_files[position], reader, allow_overwrite,
                                            sector_source)
    return [outcomes[position] for position in range(len(paths))]


def format_outcome(outcome: ImportOutcome) -> str:
    """One line per file for the CLI, e.g. ``written  IBOVDia_10-07-24.csv  2024-07-10  86 rows  -> file:///...``."""
    day = outcome.portfolio_date.isoformat() if outcome.portfolio_date else "-"
    text = f"{outcome.status:<9} {outcome.path}  {day}"
    if outcome.ok:
        text += f"  {outcome.rows} rows -> {outcome.uri}"
        if outcome.sector_snapshot:
            text += f"  (sectors from raw {outcome.sector_snapshot})"
    if outcome.reason:
        text += f"\n          {outcome.reason}"
    for warning in outcome.warnings:
        text += f"\n          warning: {warning}"
    return text


def exit_code(outcomes: list[ImportOutcome]) -> int:
    """0 when every file was written or already there; 1 when any file was refused."""
    return 0 if all(outcome.ok for outcome in outcomes) else 1
