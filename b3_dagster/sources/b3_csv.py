"""B3's "Carteira do Dia" CSV downloads (``IBOVDia_DD-MM-YY.csv``), parsed and validated strictly.

Two layouts exist, both latin-1, ``;``-separated, pt-BR numbers (see ``../shared/data/b3/SOURCES.md``):

* standard::

    IBOV - Carteira do Dia 26/06/23
    Código;Ação;Tipo;Qtde. Teórica;Part. (%)
    RRRP3;3R PETROLEUM;ON      NM;234.689.601;0,352;
    ...
    Quantidade Teórica Total;;;95.837.345.669;100,000
    Redutor;;;17.411.268,26673038

* by sector ("consulta por setor de atuação"): a leading ``Setor`` column and a trailing ``Part. (%)Acum.`` column
  (B3's subtotal of the row's sector, repeated on each of its rows), and one more empty field in the footers.

Data rows end with ``;``, the title, header and footers do not; CRLF and LF both occur (CR alone is read too). The
portfolio date is the session in the title line, never the file name. Every rule is checked and a violation raises
``B3CsvError`` naming the file and the 1-based line. The standard layout has no sector: its rows come back with
``segment`` and ``partAcum`` null, for the importer to place (see ``b3_dagster.storage.history_import``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import stat
from dataclasses import dataclass, field

import pandas as pd

from b3_dagster.calendar import is_session
from b3_dagster.errors import B3CsvError, B3FormatError
from b3_dagster.model import RAW_DATE_COLUMN
from b3_dagster.sources.b3_format import clean_text, parse_date, parse_decimal, parse_integer
from b3_dagster.sources.b3_portfolio import rows_to_frame

ENCODING = "latin-1"
SEPARATOR = ";"
TITLE_PATTERN = re.compile(r"^IBOV - Carteira do Dia (?P<date>\d{2}/\d{2}/\d{2})$")
STANDARD_HEADER = ("Código", "Ação", "Tipo", "Qtde. Teórica", "Part. (%)")
SECTOR_HEADER = ("Setor", *STANDARD_HEADER, "Part. (%)Acum.")
TOTAL_LABEL = "Quantidade Teórica Total"
REDUCTOR_LABEL = "Redutor"
TICKER_PATTERN = re.compile(r"^[A-Z0-9]{4}\d{1,2}$")
# Weights are always written with a decimal comma and 3 decimals ("0,352", "100,000"): this also refuses "0.352",
# which a pt-BR number parser would otherwise read as 352.
WEIGHT_PATTERN = re.compile(r"^\d{1,3},\d{3}$")
PART_TOTAL_THOUSANDTHS = 100_000  # Part. (%) is written with 3 decimals and sums to 100,000 in every real file
# Part. (%)Acum. equals the sum of its sector's Part. (%) exactly in the real files; B3's API rounds them apart by up
# to 0.002, so a few thousandths are allowed.
SECTOR_SUBTOTAL_TOLERANCE = 0.005
# A real file is about 8 KB (90 rows); 4 MiB is far above any index B3 publishes and still refuses a runaway input.
MAX_FILE_BYTES = 4 * 1024 * 1024
FILE_NAME_PATTERN = re.compile(r"^IBOVDia_(?P<date>\d{2}-\d{2}-\d{2})(?:\D.*)?\.csv$", re.IGNORECASE)


@dataclass(frozen=True)
class IbovCsv:
    """One parsed Carteira do Dia file.

    ``rows`` has RAW_COLUMNS in file order; for a standard file (``has_sectors`` False) ``segment`` and
    ``partAcum`` are null. ``lines`` maps each ticker to its line in the file (for messages).
    """

    name: str
    sha256: str
    portfolio_date: dt.date
    has_sectors: bool
    rows: pd.DataFrame
    theoretical_qty_total: int
    part_total: float
    reductor: float | None
    lines: dict[str, int]
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def source(self) -> str:
        layout = "by-sector" if self.has_sectors else "standard"
        return f"B3 IBOVDia CSV ({layout}) {os.path.basename(self.name)} sha256:{self.sha256[:16]}"


def read_file(path: str | os.PathLike, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of one download, refusing what is not a regular file (a named pipe would block forever, a device
    such as /dev/zero never ends) and anything larger than ``max_bytes``. Raises ``B3CsvError``."""
    name = os.fspath(path)
    try:
        # O_NONBLOCK: opening a named pipe for reading must not wait for a writer; fstat then tells what it is
        descriptor = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as error:
        raise B3CsvError(name, None, f"cannot read the file: {error.strerror or error}") from error
    with os.fdopen(descriptor, "rb") as handle:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a directory" if stat.S_ISDIR(mode)
                    else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
                    else "not a file")
            raise B3CsvError(name, None, f"is {kind}, not a regular file: give the path of a downloaded "
                                         "IBOVDia_DD-MM-YY.csv file")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise B3CsvError(name, None, f"is larger than {max_bytes:,} bytes (a Carteira do Dia file is about 8 KB): "
                                     "not a Carteira do Dia download")
    return data


def split_lines(data: bytes, name: str) -> list[str]:
    """A Carteira do Dia download's lines (any index: B3 writes them all the same way)."""
    if not data:
        raise B3CsvError(name, None, "the file is empty")
    if data.startswith(b"\xef\xbb\xbf"):
        raise B3CsvError(name, 1, "starts with a UTF-8 byte-order mark: B3 writes latin-1; this file was re-encoded")
    text = data.decode(ENCODING)  # every byte is a latin-1 character: this cannot fail
    # CRLF and LF occur in B3's downloads; CR alone (old Mac editors) is read too. Not str.splitlines(): it would
    # also break at latin-1 control characters such as 0x85.
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    return lines


def _file_name_date_warning(name: str, day: dt.date) -> list[str]:
    """A warning when the file name's date (``IBOVDia_DD-MM-YY.csv``) is not the title's: the title wins."""
    match = FILE_NAME_PATTERN.match(os.path.basename(name))
    if not match:
        return []
    try:
        named = dt.datetime.strptime(match["date"], "%d-%m-%y").date()
    except ValueError:
        return [f"{name}: the file name's date {match['date']!r} is not a date; imported under the title's date {day}"]
    if named == day:
        return []
    return [f"{name}: the file name says {named} but the title line says {day}; imported under the title's date "
            f"{day} (rename the file, or check that it is the download you meant)"]


def _parse_title(line: str, name: str) -> dt.date:
    match = TITLE_PATTERN.match(line.strip())
    if not match:
        raise B3CsvError(name, 1, f"expected the title 'IBOV - Carteira do Dia DD/MM/YY', found {line[:80]!r} "
                                  "(not an IBOV Carteira do Dia file, or its title line was removed)")
    try:
        day = parse_date(match["date"], "pt-br")
    except B3FormatError as error:
        raise B3CsvError(name, 1, f"title date: {error}") from error
    try:
        session = is_session(day)
    except ValueError as error:
        raise B3CsvError(name, 1, str(error)) from error
    if not session:
        raise B3CsvError(name, 1, f"the portfolio date {day} ({day:%A}) is not a B3 session")
    return day


def _parse_header(line: str, name: str) -> bool:
    """True for the by-sector layout, False for the standard one."""
    fields = tuple(line.split(SEPARATOR))
    if fields == STANDARD_HEADER:
        return False
    if fields == SECTOR_HEADER:
        return True
    hint = " (it looks UTF-8 re-encoded: B3 writes latin-1)" if "Ã" in line else ""
    raise B3CsvError(name, 2, f"unexpected header {line[:120]!r}{hint}; expected {SEPARATOR.join(STANDARD_HEADER)!r} "
                              f"or {SEPARATOR.join(SECTOR_HEADER)!r}")


def cell_number(parse, text: str, name: str, line: int, column: str):
    """``parse`` (b3_format's pt-BR number parsers) of one cell, or ``B3CsvError`` naming the line and column."""
    try:
        return parse(text, "pt-br")
    except B3FormatError as error:
        raise B3CsvError(name, line, f"column {column!r}: {error}") from error


def ticker_cell(values: dict[str, str], name: str, line: int) -> str:
    """The row's ``Código``, checked to be a B3 ticker."""
    cod = values["Código"].strip()
    if not TICKER_PATTERN.match(cod):
        raise B3CsvError(name, line, f"column 'Código': {cod!r} is not a B3 ticker")
    return cod


def type_cell(values: dict[str, str], name: str, line: int, cod: str) -> str:
    """The row's ``Tipo`` (share class, event flag, listing segment), never empty."""
    tipo = clean_text(values["Tipo"])
    if not tipo:
        raise B3CsvError(name, line, f"column 'Tipo' is empty for {cod}")
    return tipo


def _weight(text: str, name: str, line: int, column: str) -> float:
    if not WEIGHT_PATTERN.match(text.strip()):
        raise B3CsvError(name, line, f"column {column!r}: {text!r} is not a weight written like '0,352'")
    return cell_number(parse_decimal, text, name, line, column)


def _parse_row(line: str, number: int, name: str, has_sectors: bool, day: dt.date) -> dict:
    header = SECTOR_HEADER if has_sectors else STANDARD_HEADER
    fields = line.split(SEPARATOR)
    if len(fields) != len(header) + 1 or fields[-1] != "":
        raise B3CsvError(name, number, f"a data row has {len(header)} fields followed by ';', found {len(fields)} "
                                       f"field(s) in {line[:120]!r} (truncated file or a different layout?)")
    values = dict(zip(header, fields))
    cod = ticker_cell(values, name, number)
    tipo = type_cell(values, name, number, cod)
    segment = None
    part_acum = None
    if has_sectors:
        segment = clean_text(values["Setor"])
        if not segment:
            raise B3CsvError(name, number, f"column 'Setor' is empty for {cod}")
        part_acum = _weight(values["Part. (%)Acum."], name, number, "Part. (%)Acum.")
    part = _weight(values["Part. (%)"], name, number, "Part. (%)")
    quantity = cell_number(parse_integer, values["Qtde. Teórica"], name, number, "Qtde. Teórica")
    for column, value in (("Part. (%)", part), ("Qtde. Teórica", quantity)):
        if value <= 0:  # a position of zero or less is no position: B3 leaves such tickers out
            raise B3CsvError(name, number, f"column {column!r} of {cod} is {value}; it must be greater than 0")
    return {
        "segment": segment,
        "cod": cod,
        "asset": clean_text(values["Ação"]),
        "type": tipo,
        "part": part,
        "partAcum": part_acum,
        "theoricalQty": quantity,
        RAW_DATE_COLUMN: day,
    }


def _thousandths(value: float) -> int:
    return round(value * 1000)


def _check_totals(rows: list[dict], lines: list[int], name: str, has_sectors: bool, total_line: int,
                  qty_total: int, part_total: float) -> None:
    qty_sum = sum(row["theoricalQty"] for row in rows)
    if qty_sum != qty_total:
        raise B3CsvError(name, total_line, f"the rows' Qtde. Teórica add up to {qty_sum:,} but the footer says "
                                           f"{qty_total:,} (rows missing or altered?)")
    part_sum = sum(_thousandths(row["part"]) for row in rows)
    if part_sum != _thousandths(part_total) or part_sum != PART_TOTAL_THOUSANDTHS:
        raise B3CsvError(name, total_line, f"the rows' Part. (%) add up to {part_sum / 1000:.3f}, the footer says "
                                           f"{part_total:.3f}; both must be 100.000 (rows missing or altered?)")
    if not has_sectors:
        return
    sector_sums: dict[str, int] = {}
    for row in rows:
        sector_sums[row["segment"]] = sector_sums.get(row["segment"], 0) + _thousandths(row["part"])
    for row, number in zip(rows, lines):
        subtotal = sector_sums[row["segment"]] / 1000
        if abs(row["partAcum"] - subtotal) > SECTOR_SUBTOTAL_TOLERANCE:
            raise B3CsvError(name, number, f"Part. (%)Acum. {row['partAcum']:.3f} of {row['cod']} is not its sector's "
                                           f"subtotal: the rows of {row['segment']!r} add up to {subtotal:.3f}")


def _parse_rows(lines: list[str], name: str, has_sectors: bool, day: dt.date) -> tuple[list[dict], dict[str, int]]:
    """The data rows from line 3 up to the total footer, and each ticker's line."""
    rows: list[dict] = []
    seen: dict[str, int] = {}
    for number in range(3, len(lines) + 1):
        line = lines[number - 1]
        if line.startswith(TOTAL_LABEL + SEPARATOR):
            break
        if not line.strip():
            raise B3CsvError(name, number, "blank line inside the rows")
        if line.startswith(REDUCTOR_LABEL + SEPARATOR):
            raise B3CsvError(name, number, f"the {TOTAL_LABEL!r} footer is missing before {REDUCTOR_LABEL!r}")
        row = _parse_row(line, number, name, has_sectors, day)
        if row["cod"] in seen:
            raise B3CsvError(name, number, f"ticker {row['cod']} already appeared on line {seen[row['cod']]}")
        seen[row["cod"]] = number
        rows.append(row)
    else:
        raise B3CsvError(name, len(lines), f"the file ends without the {TOTAL_LABEL!r} footer (truncated?)")
    if not rows:
        raise B3CsvError(name, 3, "the file has no portfolio rows")
    return rows, seen


def _parse_total(line: str, number: int, name: str, has_sectors: bool) -> tuple[int, float]:
    """``Quantidade Teórica Total;;;QTY;PART`` (one more empty field and a trailing PART ACUM when by sector)."""
    figure = _figure_index(has_sectors)
    fields = line.split(SEPARATOR)
    expected = figure + (3 if has_sectors else 2)
    if len(fields) != expected or any(fields[1:figure]):
        raise B3CsvError(name, number, f"malformed {TOTAL_LABEL!r} footer {line[:120]!r}: expected {expected} fields")
    qty_total = cell_number(parse_integer, fields[figure], name, number, TOTAL_LABEL)
    part_total = _weight(fields[figure + 1], name, number, "Part. (%) total")
    return qty_total, part_total


def _figure_index(has_sectors: bool) -> int:
    """Where a footer's first figure is: after the label and the empty fields under Código, Ação, (Setor,) Tipo."""
    return 4 if has_sectors else 3


def parse_ibov_csv(data: bytes, name: str) -> IbovCsv:
    """Parse one Carteira do Dia download. ``name`` is used in messages only (the date comes from the title)."""
    lines = split_lines(data, name)
    if len(lines) < 2:
        raise B3CsvError(name, len(lines) + 1, "the file ends before the header line (truncated?)")
    day = _parse_title(lines[0], name)
    has_sectors = _parse_header(lines[1], name)
    rows, row_lines = _parse_rows(lines, name, has_sectors, day)

    total_line = 3 + len(rows)
    qty_total, part_total = _parse_total(lines[total_line - 1], total_line, name, has_sectors)
    _check_totals(rows, list(row_lines.values()), name, has_sectors, total_line, qty_total, part_total)

    reductor_line = total_line + 1
    if reductor_line > len(lines):
        raise B3CsvError(name, reductor_line, f"the file ends without the {REDUCTOR_LABEL!r} footer (truncated?)")
    if lines[reductor_line - 1].split(SEPARATOR)[0] != REDUCTOR_LABEL:
        raise B3CsvError(name, reductor_line, f"expected the {REDUCTOR_LABEL!r} footer after the total, found "
                                              f"{lines[reductor_line - 1][:80]!r}")
    warnings: list[str] = _file_name_date_warning(name, day)
    reductor = _parse_reductor(lines[reductor_line - 1], _figure_index(has_sectors), name, reductor_line, warnings)
    if len(lines) > reductor_line:
        raise B3CsvError(name, reductor_line + 1, f"unexpected content after the {REDUCTOR_LABEL!r} footer: "
                                                  f"{lines[reductor_line][:80]!r}")
    return IbovCsv(
        name=name,
        sha256=hashlib.sha256(data).hexdigest(),
        portfolio_date=day,
        has_sectors=has_sectors,
        rows=rows_to_frame(rows),
        theoretical_qty_total=qty_total,
        part_total=part_total,
        reductor=reductor,
        lines=row_lines,
        warnings=tuple(warnings),
    )


def _parse_reductor(line: str, figure_index: int, name: str, number: int, warnings: list[str]) -> float | None:
    """B3 has published malformed reductors (a formatting glitch): a bad value is a warning and null, not an error."""
    fields = line.split(SEPARATOR)
    value = fields[figure_index] if len(fields) == figure_index + 1 and not any(fields[1:figure_index]) else None
    if value is not None:
        try:
            return parse_decimal(value, "pt-br")
        except B3FormatError:
            pass
    warnings.append(f"{name}, line {number}: unparseable {REDUCTOR_LABEL!r} footer {line[:80]!r} kept as null")
    return None
