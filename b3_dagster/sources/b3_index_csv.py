"""The "Carteira do Dia" CSV download of any B3 index (``IBRADia_DD-MM-YY.csv``, ``IBXXDia_…``, ``SMLLDia_…``).

B3 serves every index's portfolio in the layout of the IBOV file (see ``b3_csv.py``, which stays IBOV-only and
strict for the IBOV pipeline): latin-1, ``;``-separated, pt-BR numbers, the title ``<IDX> - Carteira do Dia
DD/MM/YY``, the header ``Código;Ação;Tipo;Qtde. Teórica;Part. (%)``, data rows ending with ``;``, and two footers
``Quantidade Teórica Total;;;<qty>;100,000`` and ``Redutor;;;<reductor>``.

Copies found in the wild were not always left as B3 served them (``../shared/data/b3_indices/SOURCES.md``): one was
re-saved by a spreadsheet (the ``Tipo`` column gone, no thousands separators, trailing zeros dropped, the title
padded with ``;``) and one was edited by hand (no title, no footers, a de-accented header). Such a file is refused
unless ``allow_altered=True``; then it parses, and ``alterations`` says exactly how it departs from B3's format (its
date and index come from the file name when the title is gone). What is checked either way: every ticker, every
number, Σ ``Part. (%)`` = 100.000 and, when the footer is there, Σ ``Qtde. Teórica`` = its total.

``Tipo`` packs three things into one padded field: share class, an ex-event flag B3 adds around corporate events
(``ED``, ``EJ``, ``EDJ``, ``ATZ``, …) and the listing segment: ``PN  EJ  N2`` -> ``PN``, ``EJ``, ``N2``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import unicodedata
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa

from b3_dagster.calendar import is_session
from b3_dagster.errors import B3CsvError, B3FormatError
from b3_dagster.model import (
    EVENT_FLAG,
    INDEX_CODE,
    INDEX_PORTFOLIO_COLUMNS,
    INDEX_PORTFOLIO_SCHEMA,
    LISTING_SEGMENT,
    RAW_DATE_COLUMN,
    SHARE_CLASS,
)
from b3_dagster.sources.b3_csv import cell_number, split_lines, ticker_cell, type_cell
from b3_dagster.sources.b3_format import clean_text, parse_date, parse_decimal, parse_integer

SEPARATOR = ";"
TITLE_PATTERN = re.compile(r"^(?P<index>[A-Z0-9]{4}) - Carteira do Dia (?P<date>\d{2}/\d{2}/\d{2})(?P<pad>;*)$")
FILE_NAME_PATTERN = re.compile(r"^(?P<index>[A-Z0-9]{4})Dia_(?P<date>\d{2}-\d{2}-\d{2})")
HEADER_WITH_TYPE = ("Código", "Ação", "Tipo", "Qtde. Teórica", "Part. (%)")
HEADER_WITHOUT_TYPE = ("Código", "Ação", "Qtde. Teórica", "Part. (%)")
TOTAL_LABEL = "Quantidade Teórica Total"
REDUCTOR_LABEL = "Redutor"
WEIGHT_PATTERN = re.compile(r"^\d{1,3}(,\d{1,3})?$")  # B3 writes 3 decimals; a re-saved file drops trailing zeros
B3_WEIGHT_PATTERN = re.compile(r"^\d{1,3},\d{3}$")
LISTING_SEGMENTS = frozenset({"NM", "N1", "N2", "MA", "M2", "MB"})  # B3 listing segments (Novo Mercado, Nível 1/2, Bovespa Mais, balcão)
PART_TOTAL_THOUSANDTHS = 100_000


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def split_type(tipo: str | None) -> tuple[str | None, str | None, str | None]:
    """``"PN  EJ  N2"`` -> ``("PN", "EJ", "N2")``; ``"ON      NM"`` -> ``("ON", None, "NM")``; ``"ON"`` ->
    ``("ON", None, None)``; ``"ON  EDJ NM"`` -> ``("ON", "EDJ", "NM")``. The first token is the share class, a
    last token that is a listing segment (NM, N1, N2, MA, M2, MB) is the segment, and whatever lies between is the
    event flag B3 adds around corporate events (seen: ED, EJ, EB, ES, EDJ, EJS, EBG, ATZ)."""
    if not tipo or not tipo.strip():
        return None, None, None
    share_class, *rest = tipo.split()
    segment = rest.pop() if rest and rest[-1] in LISTING_SEGMENTS else None
    return share_class, " ".join(rest) or None, segment


@dataclass(frozen=True)
class IndexCsv:
    """One parsed Carteira do Dia file of any index."""

    name: str
    sha256: str
    index: str
    portfolio_date: dt.date
    rows: pd.DataFrame  # INDEX_PORTFOLIO_COLUMNS in file order
    theoretical_qty_total: int | None  # None when the footer was removed
    reductor: float | None
    lines: dict[str, int]
    alterations: tuple[str, ...] = field(default_factory=tuple)  # how the file departs from B3's format

    @property
    def source(self) -> str:
        altered = " (altered copy: " + "; ".join(self.alterations) + ")" if self.alterations else ""
        return f"B3 {self.index}Dia CSV {os.path.basename(self.name)} sha256:{self.sha256[:16]}{altered}"


def _header(line: str, number: int, name: str, alterations: list[str]) -> tuple[str, ...]:
    fields = line.split(SEPARATOR)
    if fields and fields[-1] == "":
        fields.pop()
        alterations.append("the header ends with ';'")
    fields_tuple = tuple(fields)
    for canonical in (HEADER_WITH_TYPE, HEADER_WITHOUT_TYPE):
        if fields_tuple == canonical:
            break
        if tuple(_ascii(f) for f in fields_tuple) == tuple(_ascii(f) for f in canonical):
            alterations.append("the header lost its accents (hand-edited)")
            break
    else:
        hint = " (it looks UTF-8 re-encoded: B3 writes latin-1)" if "Ã" in line else ""
        raise B3CsvError(name, number, f"unexpected header {line[:120]!r}{hint}; expected "
                                       f"{SEPARATOR.join(HEADER_WITH_TYPE)!r}")
    if canonical is HEADER_WITHOUT_TYPE:
        alterations.append("no 'Tipo' column (re-saved by a spreadsheet)")
    return canonical


def _weight(text: str, name: str, line: int, column: str, alterations: set[str]) -> float:
    text = text.strip()
    if not WEIGHT_PATTERN.match(text):
        raise B3CsvError(name, line, f"column {column!r}: {text!r} is not a weight written like '0,352'")
    if not B3_WEIGHT_PATTERN.match(text):
        alterations.add("weights lost their trailing zeros (B3 writes 3 decimals)")
    return cell_number(parse_decimal, text, name, line, column)


def _footer_values(line: str) -> list[str]:
    return [value for value in line.split(SEPARATOR)[1:] if value.strip()]


def _title(lines: list[str], name: str, alterations: list[str]) -> tuple[str, dt.date, int]:
    """The index, the portfolio date and the header's line number: from the title line, or from the file name
    when a hand-edited copy lost its title."""
    title = TITLE_PATTERN.match(lines[0].strip())
    if title:
        if title["pad"]:
            alterations.append("the title line is padded with ';'")
        try:
            day = parse_date(title["date"], "pt-br")
        except B3FormatError as error:
            raise B3CsvError(name, 1, f"title date: {error}") from error
        return title["index"], day, 2
    from_name = FILE_NAME_PATTERN.match(os.path.basename(name))
    if not from_name or not _ascii(lines[0]).startswith("Codigo;"):
        raise B3CsvError(name, 1, f"expected the title '<IDX> - Carteira do Dia DD/MM/YY', found "
                                  f"{lines[0][:80]!r}")
    alterations.append("no title line: index and date taken from the file name")
    return from_name["index"], dt.datetime.strptime(from_name["date"], "%d-%m-%y").date(), 1


def _require_session(day: dt.date, name: str) -> None:
    try:
        session = is_session(day)
    except ValueError as error:  # outside the calendar's range
        raise B3CsvError(name, 1, str(error)) from error
    if not session:
        raise B3CsvError(name, 1, f"the portfolio date {day} ({day:%A}) is not a B3 session")


def _row(values: dict[str, str], cod: str, index: str, day: dt.date, name: str, number: int,
         value_alterations: set[str]) -> dict:
    qty_text = values["Qtde. Teórica"].strip()
    if len(qty_text) > 3 and "." not in qty_text:
        value_alterations.add("numbers lost their thousands separators")
    tipo = type_cell(values, name, number, cod) if "Tipo" in values else None
    share_class, event, segment = split_type(tipo)
    return {INDEX_CODE: index, "cod": cod, "asset": clean_text(values["Ação"]), "type": tipo,
            SHARE_CLASS: share_class, EVENT_FLAG: event, LISTING_SEGMENT: segment,
            "part": _weight(values["Part. (%)"], name, number, "Part. (%)", value_alterations),
            "theoricalQty": cell_number(parse_integer, values["Qtde. Teórica"], name, number, "Qtde. Teórica"),
            RAW_DATE_COLUMN: day}


@dataclass
class _Body:
    """The data rows, the line of each ticker, how many rows end with ';', and the total footer's line (None when
    the footers were removed)."""

    rows: list[dict] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)
    trailing: int = 0
    total_line: int | None = None


def _body(lines: list[str], first_header: int, header: tuple[str, ...], index: str, day: dt.date, name: str,
          value_alterations: set[str]) -> _Body:
    body = _Body()
    for number in range(first_header + 1, len(lines) + 1):
        line = lines[number - 1]
        if _ascii(line).startswith(_ascii(TOTAL_LABEL) + SEPARATOR):
            body.total_line = number
            break
        if not line.strip():
            raise B3CsvError(name, number, "blank line inside the rows")
        fields = line.split(SEPARATOR)
        if fields[-1] == "" and len(fields) == len(header) + 1:
            fields.pop()
            body.trailing += 1
        if len(fields) != len(header):
            raise B3CsvError(name, number, f"a data row has {len(header)} fields, found {len(fields)} in "
                                           f"{line[:120]!r} (truncated file or a different layout?)")
        values = dict(zip(header, fields))
        cod = ticker_cell(values, name, number)
        if cod in body.seen:
            raise B3CsvError(name, number, f"ticker {cod} already appeared on line {body.seen[cod]}")
        body.seen[cod] = number
        body.rows.append(_row(values, cod, index, day, name, number, value_alterations))
    return body


def _footers(lines: list[str], total_line: int, qty_sum: int, name: str,
             value_alterations: set[str]) -> tuple[int, float]:
    """The total theoretical quantity and the reductor, checked against the rows; nothing may follow them."""
    values = _footer_values(lines[total_line - 1])
    if len(values) != 2:
        raise B3CsvError(name, total_line, f"malformed {TOTAL_LABEL!r} footer {lines[total_line - 1][:120]!r}")
    qty_total = cell_number(parse_integer, values[0], name, total_line, TOTAL_LABEL)
    part_total = _weight(values[1] if "," in values[1] else values[1] + ",000", name, total_line,
                         "Part. (%) total", value_alterations)
    if qty_sum != qty_total:
        raise B3CsvError(name, total_line, f"the rows' Qtde. Teórica add up to {qty_sum:,} but the footer says "
                                           f"{qty_total:,} (rows missing or altered?)")
    if round(part_total * 1000) != PART_TOTAL_THOUSANDTHS:
        raise B3CsvError(name, total_line, f"the footer's Part. (%) total is {part_total}, not 100,000")
    reductor_line = total_line + 1
    if reductor_line > len(lines) or not lines[reductor_line - 1].startswith(REDUCTOR_LABEL + SEPARATOR):
        raise B3CsvError(name, reductor_line, f"expected the {REDUCTOR_LABEL!r} footer after the total")
    reductor_values = _footer_values(lines[reductor_line - 1])
    if len(reductor_values) != 1:
        raise B3CsvError(name, reductor_line, f"malformed {REDUCTOR_LABEL!r} footer")
    reductor = cell_number(parse_decimal, reductor_values[0], name, reductor_line, REDUCTOR_LABEL)
    if len(lines) > reductor_line:
        raise B3CsvError(name, reductor_line + 1, f"unexpected content after the {REDUCTOR_LABEL!r} footer")
    return qty_total, reductor


def parse_index_csv(data: bytes, name: str, *, allow_altered: bool = False) -> IndexCsv:
    """Parse one Carteira do Dia download of any index. ``name`` is the file name: used in messages, and for the
    index and date only when the title line is missing (an altered file)."""
    lines = split_lines(data, name)
    alterations: list[str] = []
    value_alterations: set[str] = set()
    index, day, first_header = _title(lines, name, alterations)
    _require_session(day, name)
    if len(lines) <= first_header:
        raise B3CsvError(name, first_header, "the file ends before the header line (truncated?)")
    header = _header(lines[first_header - 1], first_header, name, alterations)
    body = _body(lines, first_header, header, index, day, name, value_alterations)
    rows, total_line = body.rows, body.total_line
    if not rows:
        raise B3CsvError(name, first_header + 1, "the file has no portfolio rows")
    if body.trailing and body.trailing != len(rows):
        raise B3CsvError(name, first_header + 1, f"{body.trailing} of {len(rows)} rows end with ';': a mixed file")
    if not body.trailing:
        alterations.append("data rows do not end with ';'")

    part_sum = sum(round(row["part"] * 1000) for row in rows)
    qty_total = reductor = None
    if total_line is None:
        alterations.append("no 'Quantidade Teórica Total' and 'Redutor' footers")
    else:
        qty_total, reductor = _footers(lines, total_line, sum(row["theoricalQty"] for row in rows), name,
                                       value_alterations)
    if part_sum != PART_TOTAL_THOUSANDTHS:
        raise B3CsvError(name, total_line or len(lines), f"the rows' Part. (%) add up to {part_sum / 1000:.3f}, not "
                                                         "100.000 (rows missing or altered?)")
    alterations.extend(sorted(value_alterations))
    if alterations and not allow_altered:
        raise B3CsvError(name, None, "not as B3 serves it: " + "; ".join(alterations) +
                         ". Pass allow_altered=True to import an altered copy (its alterations are recorded)")
    table = pa.Table.from_pylist(rows, schema=INDEX_PORTFOLIO_SCHEMA)
    return IndexCsv(name=name, sha256=hashlib.sha256(data).hexdigest(), index=index, portfolio_date=day,
                    rows=table.to_pandas(date_as_object=True)[INDEX_PORTFOLIO_COLUMNS],
                    theoretical_qty_total=qty_total, reductor=reductor, lines=body.seen,
                    alterations=tuple(alterations))


def recorded_csvs(directory=None) -> list:
    """The shipped Carteira do Dia downloads of indices other than IBOV (b3_dagster/recordings/b3_indices/csv),
    sorted by name. Which of them are altered copies is in the SOURCES.md there (and ``parse_index_csv`` tells)."""
    from importlib import resources
    from pathlib import Path

    folder = Path(directory) if directory else Path(str(resources.files("b3_dagster") / "recordings" / "b3_indices"
                                                          / "csv"))
    return sorted(folder.glob("*Dia_*.csv"))
