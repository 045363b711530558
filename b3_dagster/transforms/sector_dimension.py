"""One canonical sector per subsector, from B3's own classification (pure: frames in, frames out).

B3 labels a portfolio's sectors differently by source and over time (``Mats Básicos / Mineração``, the damaged
``Mats B�sicos / Minera��o``, ``Petróleo, Gás e Biocombustíveis`` vs ``Petróleo/ Gás e Biocombustíveis``, en-us
abbreviations, double spaces). The label text is therefore never a key. Each label of a day is placed **through the
tickers it holds**: ticker -> 4-letter issuer root (``PETR4`` -> ``PETR``) -> (setor econômico, subsetor) in B3's
classification vintage for that day -> the canonical name of that subsector's lineage.

Which vintage places a root on a day (``SectorDimension.place_root``):

1. the vintage **valid on the day**: the latest complete vintage with ``vigente_desde <= day`` (before the first
   vintage, the earliest one). Classification changes take effect on B3's file date, and a portfolio is classified
   with what B3 published up to then;
2. if that vintage lacks the root (a listing or a ticker rename newer than the vintage, e.g. ``ALOS`` in Dec 2023
   against the 2023-09 file), the **nearest complete vintage in time that lists the root** (before or after; the
   earlier on a tie);
3. only then a **fallback-only** vintage (the derived 2026 workbook with no segment level: ``AXIA``, ``EMBJ``).

Renames. B3 renamed subsectors (2023-08: ``Consumo Cíclico / Comércio`` -> ``Comércio Varejista``, ``Produtos de
Uso Pessoal e de Limpeza`` -> ``... Cuidado Pessoal ...``; 2025: ``Serviços Diversos`` -> ``Serviços``, ``Serviços
Médico - Hospitalares, ...`` -> ``Serv.Méd.Hospit.,...``). Renames are found from the data, not from a hand list: when
a (setor, subsetor) name appears in a vintage and another name of the same sector disappears, and most of the new
subsector's issuers sat in the vanished one in the previous vintage, both names are one **lineage**. Each lineage is
labelled with its **earliest** name. Why the earliest and not the latest: the refined table is written one day at a
time and old days are not re-refined; new vintages arrive regularly (the live download), older ones practically
never. With the earliest name, a new vintage that renames a subsector leaves every published label as it was, so the
series never splits; the latest name would relabel history on each rename (or split the series until history is
re-refined). The vintage's own names stay available in the classification table.

``Setor`` = ``"<setor_economico> / <subsetor>"`` of the lineage (just the name when both are the same, as in
``Outros``): unique (``Comércio`` exists under two sectors) and stable. A label or ticker that no vintage can place is reported (``problems``), never turned into a new sector.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa

from b3_dagster.errors import UnplacedSectors
from b3_dagster.model import (
    ECONOMIC_SECTOR,
    FALLBACK_ONLY,
    ISSUER_CODE,
    RAW_DATE_COLUMN,
    SECTOR,
    SECTOR_MAPPING_COLUMNS,
    SECTOR_MAPPING_SCHEMA,
    SOURCE_FILE,
    SUBSECTOR,
    VALID_FROM,
)

VALID, NEAREST, FALLBACK = "valid", "nearest", "fallback"
# A rename is recognised when at least this share of the new subsector's issuers (those present in the previous
# vintage) sat in the vanished subsector.
RENAME_MIN_SHARE = 0.5

Pair = tuple[str, str]  # (setor_economico, subsetor)


def issuer_root(ticker: str) -> str:
    """``PETR4`` -> ``PETR``; ``B3SA3`` -> ``B3SA``; ``TAEE11`` -> ``TAEE``."""
    return ticker.strip()[:4]


def sector_label(setor: str, subsetor: str) -> str:
    """``"<setor> / <subsetor>"``, or just the name when B3 gives the subsector its sector's name (``Outros``,
    ``Petróleo, Gás e Biocombustíveis``): still unique, since no other subsector bears a sector's name."""
    return setor if setor == subsetor else f"{setor} / {subsetor}"


@dataclass(frozen=True)
class Placement:
    """Where one root sits on a day, and how that was decided."""

    root: str
    vintage: dt.date
    source_file: str
    how: str  # valid | nearest | fallback
    pair: Pair  # the vintage's own (setor, subsetor)
    canonical: Pair  # the lineage's (setor, subsetor)

    @property
    def label(self) -> str:
        return sector_label(*self.canonical)


class _Lineages:
    """Union-find over (setor, subsetor) names."""

    def __init__(self):
        self.parent: dict[Pair, Pair] = {}

    def find(self, pair: Pair) -> Pair:
        self.parent.setdefault(pair, pair)
        while self.parent[pair] != pair:
            self.parent[pair] = self.parent[self.parent[pair]]
            pair = self.parent[pair]
        return pair

    def union(self, a: Pair, b: Pair) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


@dataclass
class SectorDimension:
    """The classification history, indexed for placing roots on any day (build with ``from_classification``)."""

    vintages: dict[dt.date, dict[str, Pair]]  # complete vintages: root -> (setor, subsetor)
    fallback: dict[dt.date, dict[str, Pair]]  # fallback-only vintages
    files: dict[tuple[dt.date, bool], str]
    canonical_of: dict[Pair, Pair]
    renames: list[tuple[dt.date, Pair, Pair]] = field(default_factory=list)  # (vintage, old name, new name)

    @classmethod
    def from_classification(cls, classification: pd.DataFrame) -> "SectorDimension":
        if classification.empty:
            raise ValueError("the classification history is empty: no vintage to place sectors with")
        vintages: dict[dt.date, dict[str, Pair]] = {}
        fallback: dict[dt.date, dict[str, Pair]] = {}
        files: dict[tuple[dt.date, bool], str] = {}
        for (day, only_fallback, source), rows in classification.groupby([VALID_FROM, FALLBACK_ONLY, SOURCE_FILE]):
            target = fallback if only_fallback else vintages
            if day in target:
                raise ValueError(f"two classification files for vintage {day}: {files[(day, only_fallback)]} "
                                 f"and {source}")
            target[day] = dict(zip(rows[ISSUER_CODE], zip(rows[ECONOMIC_SECTOR], rows[SUBSECTOR])))
            files[(day, bool(only_fallback))] = source
        if not vintages:
            raise ValueError("the classification history has only fallback-only vintages: a complete one is needed")
        lineages, renames = _find_lineages(vintages, fallback)
        return cls(vintages=dict(sorted(vintages.items())), fallback=dict(sorted(fallback.items())), files=files,
                   canonical_of=lineages, renames=renames)

    def __post_init__(self):
        self.dates: list[dt.date] = sorted(self.vintages)  # complete vintages, oldest first

    def valid_vintage(self, day: dt.date) -> dt.date:
        """The latest complete vintage with vigente_desde <= day; before the first vintage, the earliest."""
        dates = self.dates
        position = bisect.bisect_right(dates, day)
        return dates[position - 1] if position else dates[0]

    def place_root(self, root: str, day: dt.date) -> Placement | None:
        valid = self.valid_vintage(day)
        if root in self.vintages[valid]:
            return self._placement(root, valid, VALID, False)
        holding = [d for d, roots in self.vintages.items() if root in roots]
        if holding:
            nearest = min(holding, key=lambda d: (abs((d - day).days), d))
            return self._placement(root, nearest, NEAREST, False)
        holding = [d for d, roots in self.fallback.items() if root in roots]
        if holding:
            nearest = min(holding, key=lambda d: (abs((d - day).days), d))
            return self._placement(root, nearest, FALLBACK, True)
        return None

    def _placement(self, root: str, vintage: dt.date, how: str, only_fallback: bool) -> Placement:
        pair = (self.fallback if only_fallback else self.vintages)[vintage][root]
        return Placement(root, vintage, self.files[(vintage, only_fallback)], how, pair, self.canonical_of[pair])

    def canonical_pairs(self) -> list[Pair]:
        return sorted(set(self.canonical_of.values()))


def _find_lineages(vintages: dict[dt.date, dict[str, Pair]],
                   fallback: dict[dt.date, dict[str, Pair]]) -> tuple[dict[Pair, Pair], list]:
    """Each (setor, subsetor) name -> its lineage's earliest name (see the module docstring)."""
    lineages = _Lineages()
    first_seen: dict[Pair, dt.date] = {}
    renames = []
    ordered = sorted(vintages.items())
    for day, roots in ordered + sorted(fallback.items()):
        for pair in set(roots.values()):
            lineages.find(pair)
            first_seen[pair] = min(first_seen.get(pair, day), day)
    for (_, before), (day, after) in zip(ordered, ordered[1:]):
        old_pairs, new_pairs = set(before.values()), set(after.values())
        vanished = old_pairs - new_pairs
        for pair in sorted(new_pairs - old_pairs):
            earlier = Counter(before[root] for root, now in after.items() if now == pair and root in before)
            candidates = [(count, old) for old, count in earlier.items() if old in vanished and old[0] == pair[0]]
            if not candidates:
                continue
            count, old = max(candidates)
            if count >= RENAME_MIN_SHARE * sum(earlier.values()):
                lineages.union(old, pair)
                renames.append((day, old, pair))
    members: dict[Pair, list[Pair]] = defaultdict(list)
    for pair in first_seen:
        members[lineages.find(pair)].append(pair)
    canonical = {}
    for group in members.values():
        name = min(group, key=lambda pair: (first_seen[pair], pair))
        canonical.update({pair: name for pair in group})
    return canonical, renames


# ---- placing a portfolio's rows ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SectorMapping:
    """The canonical sector of every raw row, the label-level view, and what could not be placed.

    ``rows``: SECTOR_MAPPING_COLUMNS (DataCarteira, cod, setor_economico, subsetor, Setor), one per raw row that
    could be placed; ``labels``: one row per (day, source label) with its canonical sector and evidence;
    ``problems``: labels and tickers that no vintage can place (day named); ``notes``: labels whose tickers point to
    more than one subsector (the majority wins; B3 moved a company, or a label spans two subsectors).
    """

    rows: pd.DataFrame
    labels: pd.DataFrame
    problems: tuple[str, ...]
    notes: tuple[str, ...]
    placements: pd.DataFrame  # one row per (day, ticker): root, vintage, how, source_file

    def to_arrow(self) -> pa.Table:
        return pa.Table.from_pandas(self.rows[SECTOR_MAPPING_COLUMNS], schema=SECTOR_MAPPING_SCHEMA,
                                    preserve_index=False)


LABEL_COLUMNS = [RAW_DATE_COLUMN, "segment", ECONOMIC_SECTOR, SUBSECTOR, SECTOR, "tickers", "tickers_agreeing"]
PLACEMENT_COLUMNS = [RAW_DATE_COLUMN, "cod", "root", "vintage", "how", SOURCE_FILE, ECONOMIC_SECTOR, SUBSECTOR]


def map_sectors(raw: pd.DataFrame, dimension: SectorDimension) -> SectorMapping:
    """Place every raw row (RAW_COLUMNS, any number of days) in its canonical sector, through its label's tickers."""
    problems: list[str] = []
    notes: list[str] = []
    out_rows, label_rows, placement_rows = [], [], []
    # Plain lists rather than a pandas groupby: a per-group frame costs ~0.5 ms, and five years hold ~35k labels.
    groups: dict[tuple, list[tuple[str, float]]] = defaultdict(list)
    for day, segment, cod, part in zip(raw[RAW_DATE_COLUMN].tolist(), raw["segment"].tolist(), raw["cod"].tolist(),
                                       raw["part"].tolist()):
        groups[(day, segment)].append((cod, part))
    for (day, segment), group in sorted(groups.items(), key=lambda item: (item[0][0], str(item[0][1]))):
        votes: Counter[Pair] = Counter()
        weight: Counter[Pair] = Counter()
        codes = [cod for cod, _ in group]
        for cod, part in group:
            placement = dimension.place_root(issuer_root(cod), day)
            if placement is None:
                problems.append(f"{day}: ticker {cod} (root {issuer_root(cod)}, label {segment!r}) is in no "
                                "classification vintage; add a vintage that lists it")
                continue
            votes[placement.canonical] += 1
            weight[placement.canonical] += part
            placement_rows.append((day, cod, placement.root, placement.vintage, placement.how,
                                   placement.source_file, *placement.pair))
        if segment is None or (isinstance(segment, float) and pd.isna(segment)):
            problems.append(f"{day}: {len(group)} row(s) without a sector label ({sorted(codes)[:10]})")
            continue
        if not votes:
            problems.append(f"{day}: label {segment!r} cannot be placed: none of its tickers "
                            f"{sorted(codes)} is in any classification vintage")
            continue
        chosen = max(votes, key=lambda pair: (votes[pair], weight[pair], pair))
        if len(votes) > 1:
            spread = ", ".join(f"{sector_label(*pair)} ({count})" for pair, count in votes.most_common())
            notes.append(f"{day}: label {segment!r} holds tickers of {len(votes)} subsectors: {spread}; "
                         f"placed in {sector_label(*chosen)}")
        label = sector_label(*chosen)
        label_rows.append((day, segment, *chosen, label, len(group), votes[chosen]))
        out_rows.extend((day, cod, *chosen, label) for cod in codes)
    rows = pd.DataFrame(out_rows, columns=SECTOR_MAPPING_COLUMNS)
    if not rows.empty:
        rows = rows.sort_values([RAW_DATE_COLUMN, "cod"]).reset_index(drop=True)
    return SectorMapping(rows=rows, labels=pd.DataFrame(label_rows, columns=LABEL_COLUMNS),
                         problems=tuple(problems), notes=tuple(notes),
                         placements=pd.DataFrame(placement_rows, columns=PLACEMENT_COLUMNS))


def canonical_rows(raw: pd.DataFrame, dimension: SectorDimension, strict: bool = True) -> pd.DataFrame:
    """``raw`` with ``setor_economico``, ``subsetor`` and ``Setor`` added (by DataCarteira, cod).

    ``strict`` raises ``UnplacedSectors`` when anything cannot be placed; otherwise unplaced rows keep nulls."""
    mapping = map_sectors(raw, dimension)
    if strict and mapping.problems:
        raise UnplacedSectors(mapping.problems)
    return raw.merge(mapping.rows, on=[RAW_DATE_COLUMN, "cod"], how="left", validate="one_to_one")
