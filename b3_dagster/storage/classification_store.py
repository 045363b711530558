"""B3's classification workbooks kept in the lake, beside the vintages shipped with the package.

Each file is stored as B3 served it (the original ``.xlsx``/``.zip`` bytes; the parse is redone on read, so a parser
fix applies to every vintage) under ``reference/classificacao_setorial/vigente_desde=YYYY-MM-DD/<file>``. A user may
also drop a ``ClassifSetorial.zip``/``.xlsx`` anywhere under ``reference/classificacao_setorial/``: its vintage is the
``vigente_desde=`` folder it sits in, else the date in its name (B3's member name inside a zip carries one); a
dropped workbook without any date is reported, naming the key, and used nowhere.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from b3_dagster.errors import ClassificationConflict, ClassificationError
from b3_dagster.sources.b3_classification import (
    Vintage,
    classification_history,
    parse_classification,
    shipped_files,
)
from b3_dagster.storage.lake import Lake

CLASSIFICATION_PREFIX = "reference/classificacao_setorial/"
# Parses of the shipped workbooks, each keyed by the digest of its bytes: outside CLASSIFICATION_PREFIX, where every
# file is taken for a dropped workbook.
PARSED_CACHE_PREFIX = "cache/classificacao_setorial/"
_VINTAGE_FOLDER = re.compile(r"(^|/)vigente_desde=(?P<date>\d{4}-\d{2}-\d{2})/")
WORKBOOK_SUFFIXES = (".xlsx", ".zip")


@dataclass(frozen=True)
class StoredVintage:
    status: str  # written | unchanged
    key: str
    uri: str
    vintage: Vintage


@dataclass(frozen=True)
class LakeVintages:
    vintages: list[Vintage]
    errors: list[str]  # files under the prefix that could not be used, each naming its key


def vintage_key(vintage: Vintage) -> str:
    name = PurePosixPath(vintage.source_file).name
    return f"{CLASSIFICATION_PREFIX}vigente_desde={vintage.valid_from.isoformat()}/{name}"


class ClassificationStore:
    def __init__(self, lake: Lake):
        self.lake = lake

    def add(self, data: bytes, name: str, valid_from: dt.date | None = None) -> StoredVintage:
        """Parse (``ClassificationError`` on a bad file, nothing written) and keep the original bytes."""
        vintage = parse_classification(data, name, valid_from)
        key = vintage_key(vintage)
        if self.lake.write_new(key, data):
            return StoredVintage("written", key, self.lake.uri(key), vintage)
        if self.lake.read_bytes(key) == data:
            return StoredVintage("unchanged", key, self.lake.uri(key), vintage)
        raise ClassificationConflict(f"{self.lake.uri(key)} already holds a different workbook for vintage "
                                     f"{vintage.valid_from}; keep it, or store the new one under another name")

    def keys(self) -> list[str]:
        return [info.key for info in self.lake.list(CLASSIFICATION_PREFIX)
                if info.key.lower().endswith(WORKBOOK_SUFFIXES)]

    def vintages(self) -> LakeVintages:
        vintages, errors = [], []
        for key in self.keys():
            folder = _VINTAGE_FOLDER.search(key)
            valid_from = dt.date.fromisoformat(folder["date"]) if folder else None
            try:
                vintages.append(parse_classification(self.lake.read_bytes(key), self.lake.uri(key), valid_from))
            except ClassificationError as error:
                errors.append(str(error))
        return LakeVintages(vintages, errors)

    def history(self, include_shipped: bool = True) -> tuple[pd.DataFrame, list[str]]:
        """The classification history (CLASSIFICATION_COLUMNS): shipped vintages plus the lake's, and the lake files
        that could not be used. A lake vintage with the same date and rows as a shipped one is the same vintage."""
        found = self.vintages()
        by_date: dict[tuple[dt.date, bool], Vintage] = {}
        shipped = [self._parsed(path.read_bytes(), path.name) for path in shipped_files()] \
            if include_shipped else []
        errors = list(found.errors)
        for vintage in shipped + found.vintages:
            slot = (vintage.valid_from, vintage.fallback_only)
            if slot in by_date:
                if _same_rows(by_date[slot], vintage):
                    continue
                errors.append(f"{vintage.source_file}: vintage {vintage.valid_from} differs from "
                              f"{by_date[slot].source_file} of the same date; the first one is used")
                continue
            by_date[slot] = vintage
        return classification_history(by_date.values()), errors


    def _parsed(self, data: bytes, name: str) -> Vintage:
        """``parse_classification``, remembered in the lake: every refine needs the 12 shipped workbooks, parsing them
        takes ~0.7 s and reading their parses back ~20 ms. The key is the digest of the workbook's bytes, so an entry
        can never stand for other bytes; an unreadable entry is parsed again and rewritten."""
        key = f"{PARSED_CACHE_PREFIX}{hashlib.sha256(data).hexdigest()[:32]}.parquet"
        if self.lake.exists(key):
            try:
                table = pq.read_table(io.BytesIO(self.lake.read_bytes(key)))
                meta = table.schema.metadata
                return Vintage(meta[b"source_file"].decode(), meta[b"layout"].decode(),
                               dt.date.fromisoformat(meta[b"valid_from"].decode()),
                               table.to_pandas(date_as_object=True))
            except (pa.ArrowException, OSError, KeyError, ValueError):
                pass
        vintage = parse_classification(data, name)
        table = pa.Table.from_pandas(vintage.rows, preserve_index=False).replace_schema_metadata({
            b"source_file": vintage.source_file.encode(), b"layout": vintage.layout.encode(),
            b"valid_from": vintage.valid_from.isoformat().encode()})
        sink = io.BytesIO()
        pq.write_table(table, sink)
        self.lake.write_bytes(key, sink.getvalue())
        return vintage


def _same_rows(a: Vintage, b: Vintage) -> bool:
    columns = ["codigo", "setor_economico", "subsetor", "segmento"]
    left, right = (v.rows[columns].sort_values("codigo").reset_index(drop=True) for v in (a, b))
    return left.equals(right)
