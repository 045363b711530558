"""Import past IBOV portfolios from B3's "Carteira do Dia" CSV downloads into raw partitions.

B3's API serves only the current portfolio; past days come from the ``IBOVDia_DD-MM-YY.csv`` files users download
from B3's site. Each file is parsed and validated by ``b3_dagster.sources.b3_csv`` and written through
``PortfolioStore.write_raw``, so an existing partition is never replaced by different data (identical data is
"unchanged"). One bad file is reported as "refused" with its reason; the others are still imported.

Sectors. The by-sector download carries them (and B3's ``Part. (%)Acum.``). The standard download has no sector
column; how its rows are placed depends on ``sector_source``:

* ``"classification"`` (default), ticker by ticker:

  1. a raw partition **of the same day** whose sectors B3 published (the API or the by-sector file) and that lists
     every ticker: its labels, verbatim (the same portfolio then compares equal, and B3's own labels of that very
     day beat any classification);
  2. otherwise **B3's sector classification** (``b3_dagster.sources.b3_classification``; the shipped vintages unless
     the caller passes a history): the ticker's 4-letter root in the vintage valid on the file's date, else the
     nearest vintage that lists the root, else a fallback-only vintage (the rule of
     ``b3_dagster.transforms.sector_dimension.SectorDimension.place_root``). The row's ``segment`` is that vintage's
     ``"<setor econômico> / <subsetor>"`` (``sector_label``: the sector alone when the subsector bears its name);
  3. a root that no vintage lists takes the label of the **nearest raw snapshot with B3-published sectors** that
     lists the ticker.

  A file is refused only when some ticker is placed by none of these, naming the tickers and their lines.
* ``"nearest-snapshot"``: the labels of *one* raw snapshot: the raw partition closest in time (before or after; the
  earlier one on a tie) whose sectors came from B3 itself and that lists *every* ticker of the file (the behaviour
  before the classification existed; kept for lakes whose history was imported that way).
* a date (``"2024-07-10"`` or ``datetime.date``): that raw partition only.
* ``"none"``: standard files are refused; only by-sector files are imported.

How each ticker was placed is recorded in the raw file's Parquet metadata ``b3.sector_source`` as JSON
``{ticker: how}``, ``how`` being ``raw:<day>`` (a B3-published snapshot) or ``classification:<vintage>:<valid|nearest|
fallback>``. Metadata rather than a column: the raw schema is the system of record and stays B3's own fields, raw
files written before this still read unchanged, and raw equality (``same_portfolio``) compares the rows as before.
Snapshots whose sectors were assigned here are never a sector source themselves (no second-hand sectors), nor are
snapshots whose labels were damaged in recording (U+FFFD). ``partAcum`` of placed rows is left null: in raw it
means B3's own subtotal of the sector, which the standard file does not carry; the refined ``soma_part`` is computed
from ``part`` anyway, and recomputing ``partAcum`` would make the ``soma_part`` vs ``partAcum`` check compare a
number with itself.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Callable, Iterable, Union

import pandas as pd

from b3_dagster.errors import (
    B3CsvError,
    RawPartitionConflict,
    RawPartitionMissing,
    UnplaceableTickers,
    UnreadableObject,
)
from b3_dagster.model import PortfolioSnapshot
from b3_dagster.sources.b3_csv import IbovCsv, parse_ibov_csv, read_file
from b3_dagster.storage.portfolio_store import PortfolioStore
from b3_dagster.transforms.sector_dimension import SectorDimension, issuer_root, sector_label

CLASSIFICATION = "classification"
NEAREST_SNAPSHOT = "nearest-snapshot"
NO_SECTOR_SOURCE = "none"
SectorSource = Union[str, dt.date]
# Appended to a raw snapshot's source when its sectors were assigned here; such snapshots are never a sector source.
SECTORS_ASSIGNED_MARK = "; sectors assigned from "
DAMAGED_TEXT = "\ufffd"
# How a ticker was placed, as recorded in the raw file's metadata b3.sector_source.
RAW_PLACEMENT = "raw"
CLASSIFICATION_PLACEMENT = "classification"

WRITTEN, UNCHANGED, REPLACED, REFUSED = "written", "unchanged", "replaced", "refused"


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
    placed_by: dict[str, int] = field(default_factory=dict)  # how many tickers each kind of source placed

    @property
    def ok(self) -> bool:
        return self.status != REFUSED


def check_sector_source(sector_source: SectorSource) -> SectorSource:
    """``sector_source`` as the import takes it (a date, or one of the named sources); ValueError names the choices."""
    if isinstance(sector_source, dt.date) or sector_source in (CLASSIFICATION, NEAREST_SNAPSHOT, NO_SECTOR_SOURCE):
        return sector_source
    try:
        return dt.date.fromisoformat(sector_source)
    except (TypeError, ValueError):
        raise ValueError(f"sector_source must be {CLASSIFICATION!r}, {NEAREST_SNAPSHOT!r}, {NO_SECTOR_SOURCE!r} or "
                         f"a YYYY-MM-DD date, not {sector_source!r}") from None


def is_sector_source(snapshot: PortfolioSnapshot) -> bool:
    """True when the snapshot's sectors were published by B3 (not assigned by an import) and are intact."""
    segments = snapshot.rows["segment"]
    return (SECTORS_ASSIGNED_MARK not in snapshot.source and snapshot.sector_sources is None
            and bool(len(segments)) and segments.notna().all()
            and not segments.str.contains(DAMAGED_TEXT, regex=False).any())


def _placed(parsed: IbovCsv, labels: dict[str, str], how: dict[str, str], summary: str) -> PortfolioSnapshot:
    rows = parsed.rows.copy()
    rows["segment"] = rows["cod"].map(labels)
    return PortfolioSnapshot(
        portfolio_date=parsed.portfolio_date,
        rows=rows,
        reductor=parsed.reductor,
        theoretical_qty_total=parsed.theoretical_qty_total,
        source=f"{parsed.source}{SECTORS_ASSIGNED_MARK}{summary}",
        warnings=parsed.warnings,
        sector_sources={cod: how[cod] for cod in rows["cod"]},
    )


def assign_sectors(parsed: IbovCsv, sectors: PortfolioSnapshot) -> PortfolioSnapshot:
    """A standard file's rows placed with ``sectors``' label for each ticker; ``partAcum`` stays null."""
    label_of = dict(zip(sectors.rows["cod"], sectors.rows["segment"]))
    missing = {cod: line for cod, line in parsed.lines.items() if cod not in label_of}
    if missing:
        raise UnplaceableTickers(parsed.name, missing, f"The raw snapshot of {sectors.portfolio_date} lacks them.")
    day = sectors.portfolio_date.isoformat()
    return _placed(parsed, label_of, {cod: f"{RAW_PLACEMENT}:{day}" for cod in parsed.lines}, f"raw {day}")


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

    def sector_sources_by_distance(self, day: dt.date) -> Iterable[PortfolioSnapshot]:
        """Raw snapshots with B3-published sectors, nearest to ``day`` first (the earlier one on a tie)."""
        for candidate in sorted(self.store.raw_days(), key=lambda other: (abs((other - day).days), other)):
            snapshot = self.read(candidate)
            if snapshot is not None and is_sector_source(snapshot):
                yield snapshot


def choose_sector_snapshot(parsed: IbovCsv, reader: _SnapshotReader, sector_source: SectorSource) -> PortfolioSnapshot:
    """The raw snapshot whose labels place ``parsed``'s rows (see the module docstring), or ``UnplaceableTickers``."""
    everything = dict(parsed.lines)
    if sector_source == NO_SECTOR_SOURCE:
        raise UnplaceableTickers(parsed.name, everything, "The standard download has no sector column and "
                                 "sector_source is 'none'; import the by-sector download of that day instead.")
    day = parsed.portfolio_date
    if isinstance(sector_source, dt.date):
        snapshot = reader.read(sector_source)
        candidates = [snapshot] if snapshot is not None and is_sector_source(snapshot) else []
    else:
        candidates = reader.sector_sources_by_distance(day)
    nearest = None
    for snapshot in candidates:
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


def _same_rows_but_sectors(parsed: IbovCsv, snapshot: PortfolioSnapshot) -> bool:
    """True when ``snapshot`` holds exactly ``parsed``'s rows, apart from the sector and B3's sector subtotal."""
    columns = [name for name in parsed.rows.columns if name not in ("segment", "partAcum")]
    ordered = [frame[columns].sort_values("cod").reset_index(drop=True) for frame in (parsed.rows, snapshot.rows)]
    return (len(parsed.rows) == len(snapshot.rows) and ordered[0].equals(ordered[1])
            and snapshot.theoretical_qty_total in (None, parsed.theoretical_qty_total))


def place_with_classification(parsed: IbovCsv, reader: _SnapshotReader,
                              dimension: SectorDimension) -> PortfolioSnapshot:
    """A standard file placed ticker by ticker: same-day B3 snapshot, classification, nearest snapshot (see above)."""
    day = parsed.portfolio_date
    same_day = reader.read(day)
    if same_day is not None and is_sector_source(same_day) and set(parsed.lines) <= set(same_day.rows["cod"]):
        if _same_rows_but_sectors(parsed, same_day):
            return same_day  # the portfolio B3 already published with its sectors: the import is "unchanged"
        return assign_sectors(parsed, same_day)
    labels: dict[str, str] = {}
    how: dict[str, str] = {}
    vintages: set[str] = set()
    for cod in parsed.lines:
        placement = dimension.place_root(issuer_root(cod), day)
        if placement is not None:
            labels[cod] = sector_label(*placement.pair)
            how[cod] = f"{CLASSIFICATION_PLACEMENT}:{placement.vintage.isoformat()}:{placement.how}"
            vintages.add(placement.vintage.isoformat())
    unknown = {cod: line for cod, line in parsed.lines.items() if cod not in labels}
    snapshots: set[str] = set()
    if unknown:
        for snapshot in reader.sector_sources_by_distance(day):
            label_of = dict(zip(snapshot.rows["cod"], snapshot.rows["segment"]))
            for cod in [cod for cod in unknown if cod in label_of]:
                labels[cod] = label_of[cod]
                how[cod] = f"{RAW_PLACEMENT}:{snapshot.portfolio_date.isoformat()}"
                snapshots.add(snapshot.portfolio_date.isoformat())
                del unknown[cod]
            if not unknown:
                break
    if unknown:
        roots = sorted({issuer_root(cod) for cod in unknown})
        raise UnplaceableTickers(parsed.name, unknown, f"No sector classification vintage lists their issuer root(s) "
                                 f"{roots} and no raw snapshot with B3-published sectors lists them. Add B3's "
                                 "ClassifSetorial workbook of a nearby date, or import a by-sector download of a "
                                 "nearby date; no sector is guessed.")
    summary = ", ".join([f"classification {' '.join(sorted(vintages))}"] * bool(vintages)
                        + [f"raw {' '.join(sorted(snapshots))}"] * bool(snapshots))
    return _placed(parsed, labels, how, summary)


def _snapshot_of(parsed: IbovCsv, reader: _SnapshotReader, sector_source: SectorSource,
                 dimension: Callable[[], SectorDimension]) -> tuple[PortfolioSnapshot, dt.date | None]:
    """The raw snapshot to write, and the day whose labels placed all of a standard file's rows (if one did)."""
    if parsed.has_sectors:
        return PortfolioSnapshot(portfolio_date=parsed.portfolio_date, rows=parsed.rows, reductor=parsed.reductor,
                                 theoretical_qty_total=parsed.theoretical_qty_total, source=parsed.source,
                                 warnings=parsed.warnings), None
    if sector_source == CLASSIFICATION:
        snapshot = place_with_classification(parsed, reader, dimension())
        if snapshot.sector_sources is None:  # the same day's B3-published snapshot, as it is
            return snapshot, snapshot.portfolio_date
        days = {how.split(":", 1)[1] for how in snapshot.sector_sources.values()
                if how.startswith(RAW_PLACEMENT + ":")}
        whole = len(days) == 1 and all(h.startswith(RAW_PLACEMENT + ":") for h in snapshot.sector_sources.values())
        return snapshot, dt.date.fromisoformat(days.pop()) if whole else None
    sectors = choose_sector_snapshot(parsed, reader, sector_source)
    return assign_sectors(parsed, sectors), sectors.portfolio_date


def placement_counts(snapshot: PortfolioSnapshot) -> dict[str, int]:
    """``{"classification:2025-03-10:valid": 84, "raw:2024-07-10": 3}``-style counts of how tickers were placed."""
    return dict(Counter(snapshot.sector_sources.values())) if snapshot.sector_sources else {}


@lru_cache(maxsize=1)
def shipped_dimension() -> SectorDimension:
    """The sector dimension of the classification vintages shipped with the package (parsed once per process)."""
    from b3_dagster.sources.b3_classification import load_shipped_classification

    return SectorDimension.from_classification(load_shipped_classification())


def _import_parsed(path: str, parsed: IbovCsv, reader: _SnapshotReader, allow_overwrite: bool,
                   sector_source: SectorSource, dimension: Callable[[], SectorDimension]) -> ImportOutcome:
    seen_warnings = len(reader.warnings)
    base = ImportOutcome(path, REFUSED, parsed.portfolio_date, len(parsed.rows))
    try:
        snapshot, sector_day = _snapshot_of(parsed, reader, sector_source, dimension)
        base = replace(base, sector_snapshot=sector_day, placed_by=placement_counts(snapshot))
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
                 sector_source: SectorSource = CLASSIFICATION,
                 classification: pd.DataFrame | None = None) -> list[ImportOutcome]:
    """Import Carteira do Dia CSV files into raw partitions; one outcome per path, in the order given.

    By-sector files are imported first (oldest first), so standard files of the same batch can take their sector
    labels from them. Nothing is raised for a bad file: it is reported as refused, with the file and line at fault.
    ``allow_overwrite`` replaces a partition holding different data (the old file is archived by the store).
    ``classification`` is the classification history (CLASSIFICATION_COLUMNS) used by ``sector_source``
    "classification"; by default the vintages shipped with the package.
    """
    sector_source = check_sector_source(sector_source)
    built: list[SectorDimension] = []

    def dimension() -> SectorDimension:  # built only when a standard file needs it
        if not built:
            built.append(shipped_dimension() if classification is None
                         else SectorDimension.from_classification(classification))
        return built[0]

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
                                            sector_source, dimension)
    return [outcomes[position] for position in range(len(paths))]


def format_outcome(outcome: ImportOutcome) -> str:
    """One line per file for the CLI, e.g. ``written  IBOVDia_10-07-24.csv  2024-07-10  86 rows  -> file:///...``."""
    day = outcome.portfolio_date.isoformat() if outcome.portfolio_date else "-"
    text = f"{outcome.status:<9} {outcome.path}  {day}"
    if outcome.ok:
        text += f"  {outcome.rows} rows -> {outcome.uri}"
        if outcome.sector_snapshot:
            text += f"  (sectors from raw {outcome.sector_snapshot})"
        elif outcome.placed_by:
            kinds = Counter()
            for how, count in outcome.placed_by.items():
                kinds[how.rsplit(":", 1)[-1] if how.startswith(CLASSIFICATION_PLACEMENT) else how] += count
            text += "  (sectors: " + ", ".join(
                f"{count} by {kind + ' classification vintage' if kind in ('valid', 'nearest', 'fallback') else kind}"
                for kind, count in sorted(kinds.items())) + ")"
    if outcome.reason:
        text += f"\n          {outcome.reason}"
    for warning in outcome.warnings:
        text += f"\n          warning: {warning}"
    return text


def exit_code(outcomes: list[ImportOutcome]) -> int:
    """0 when every file was written or already there; 1 when any file was refused."""
    return 0 if all(outcome.ok for outcome in outcomes) else 1
