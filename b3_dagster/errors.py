"""Every error the project raises, in one module: one base class, a few kinds that say whether running again can
help, and the concrete errors grouped by the code that raises them.

Every error the package raises on purpose derives from ``B3DagsterError`` through one of the kinds below. Each kind
states, as a class attribute, whether a retry can help (``retryable``) and what to do (``advice``): the assets turn
any of them into one clear ``dg.Failure`` in one place (``defs/shared/failures.py``), with ``retryable`` in its
metadata (``retry_helps``) and as the run's retry decision; the command line prints the same message without a
traceback.

The concrete errors follow the kinds, under a heading that names the modules raising them (``sources/``,
``transforms/``, ``storage/``, ``rules/``). Each derives from a kind and keeps its built-in base too (``ValueError``,
``LookupError``, ...) so that ``except`` clauses written against those still hold. Raising modules import them from
here; no other module of the package defines an exception (``b3_dagster_tests/test_errors.py`` checks it), except two
on purpose: ``glue_jobs/refine_sectors.JobArgumentError`` (the script runs inside AWS Glue without this package) and
``sources/http._RequestExpired`` (a private signal inside the HTTP client, never raised to a caller).

The bottom layer: plain Python and the standard library, importing nothing from the package and no dagster.
"""

from __future__ import annotations

import datetime as dt
from typing import ClassVar, Union
from urllib.parse import urlsplit

MetadataValue = Union[str, int, float, bool]


class B3DagsterError(Exception):
    """Base of every error this project raises on purpose. The message names the file/page/line/field and the
    stored object involved; ``advice`` (per kind) says what to do, and ``retryable`` whether running again can help."""

    retryable: ClassVar[bool] = False
    advice: str = ""  # per kind; an instance may replace it (``advice=""`` when its message already says it all)

    def __init__(self, *args: object, advice: str | None = None, **details: MetadataValue):
        super().__init__(*args)
        if advice is not None:
            self.advice = advice
        self._details = details

    def details(self) -> dict[str, MetadataValue]:
        """Facts worth showing beside the message (host, attempts, day...): given as keywords, or by a subclass."""
        return dict(getattr(self, "_details", {}))

    def explain(self) -> str:
        """For users: the message's first line followed by what to do (the sentences of ``advice`` that the message
        does not already say), then any further lines of the message (e.g. a long request URL) as they are."""
        lines = str(self).strip().splitlines() or [type(self).__name__]
        first = lines[0].rstrip()
        said = " ".join(lines).lower()
        sentences = [s.strip().rstrip(".") for s in self.advice.split(". ") if s.strip()]
        tail = [f"{s}." for s in sentences if s.lower() not in said]
        if tail:
            first = f"{first}{'' if first.endswith(('.', ':', '!', '?')) else '.'} {' '.join(tail)}".replace("..", ".")
        return "\n".join([first, *lines[1:]])


class BadInput(B3DagsterError):
    """A source's answer, a file or a value that does not follow its format. Nothing of it was written."""

    retryable = False
    advice = ("Nothing was written. Running again with the same input fails the same way: fix or replace the input "
              "named above.")


class Unavailable(B3DagsterError):
    """Nothing usable came back in time (network, deadline, a service that refused): not a fault of the data."""

    retryable = True
    advice = "Nothing was written. This can pass on its own: run again later."


class NotReady(B3DagsterError):
    """The data asked for is not final yet at its source (e.g. a provisional bar before the session closes)."""

    retryable = True
    advice = "Nothing was written. Run again once the source has published the final data."


class Missing(B3DagsterError):
    """Something this step reads is not stored yet: an upstream asset or import must run first."""

    retryable = False
    advice = "Materialise (or import) what the message names first, then run this again."


class TableHasNoRows(Missing):
    """A table exists (or may) but holds no rows yet: the asset that fills it has not run."""

    advice = "Materialise the asset that fills the table first, then run this again."


class Refused(B3DagsterError):
    """The write would replace or remove data already stored; nothing was changed. Overwriting is a decision."""

    retryable = False
    advice = ("Nothing was changed. If the new data is the right one, run again allowing the overwrite "
              "(allow_overwrite in the run config, or the command's --allow-overwrite).")


class Conflict(B3DagsterError):
    """Another writer won a race on the same object; nothing of this write was kept."""

    retryable = True
    advice = "Nothing of this write was kept. Run again: it starts from what the other writer left."


class Incomplete(B3DagsterError):
    """A step's own output is partial (e.g. staged rows short of what was expected); nothing was committed."""

    retryable = True
    advice = "Nothing was committed. Run the step again; if it fails the same way, read which day or key is short."


class ConfigError(B3DagsterError, ValueError):
    """A setting or argument that cannot be used; the message names it and the bad value."""

    retryable = False
    advice = "Correct the setting named above (README, \"Settings\") and run again."


class ExternalFailure(B3DagsterError):
    """An outside service (AWS Glue, S3, a webhook) failed the request; its own message is quoted."""

    retryable = True
    advice = "If the service's message points at a passing fault, run again; otherwise fix what it names."


KINDS: tuple[type[B3DagsterError], ...] = (BadInput, Unavailable, NotReady, Missing, Refused, Conflict, Incomplete,
                                           ConfigError, ExternalFailure)


# ---- HTTP fetching ---------------------------------------------------------------------------------------------------
# Raised by sources/http.py for every client. The portfolio and Yahoo clients wrap them in their own *Unreachable
# error below; ``get_ok`` lets them through to the other clients' callers.


class HttpFetchError(Unavailable):
    """The fetch ended without a usable HTTP answer. ``attempts`` counts the requests made."""

    def __init__(self, message: str, *, url: str, attempts: int):
        super().__init__(message)
        self.url = url
        self.host = urlsplit(url).netloc
        self.attempts = attempts

    def details(self) -> dict:
        return {"host": self.host, "attempts": self.attempts}


class FetchDeadlineExceeded(HttpFetchError):
    """The fetch's deadline (or one request's timeout, on the last attempt) ended it."""


class BodyTooLarge(HttpFetchError):
    """The answer is larger than the configured cap; it was not read to the end."""

    retryable = False  # the same answer will be as large: the cap (a setting) or the request must change
    advice = "The size cap is a setting (see README, \"Settings\"): raise it only if the answer is legitimate."


class NetworkError(HttpFetchError):
    """Nothing answered: DNS failure, refused or reset connection. ``cause`` is the last underlying error."""

    def __init__(self, message: str, *, url: str, attempts: int, cause: BaseException):
        super().__init__(message, url=url, attempts=attempts)
        self.cause = cause


# ---- B3's file and value formats -------------------------------------------------------------------------------------
# Raised by sources/b3_format.py, sources/b3_csv.py and sources/b3_index_csv.py.


class B3FormatError(BadInput, ValueError):
    """A value that does not follow B3's format."""


class B3CsvError(BadInput, ValueError):
    """A Carteira do Dia file that does not follow B3's format. Nothing is imported when this is raised."""

    def __init__(self, file: str, line: int | None, message: str):
        where = f"{file}, line {line}" if line is not None else file
        super().__init__(f"{where}: {message}")
        self.file = file
        self.line = line
        self.message = message


# ---- B3's GetPortfolioDay API ----------------------------------------------------------------------------------------
# Raised by sources/b3_portfolio.py.


class B3ResponseError(BadInput):
    """B3 answered with something that is not a valid portfolio page. Nothing is written when this is raised."""

    advice = ("B3 returned an unusable answer; nothing was written. Running again gets the same answer until B3 "
              "corrects it (or the client learns a changed format): report the page and field named above.")

    def __init__(self, message: str, *, page: int | None = None, field: str | None = None, url: str | None = None):
        where = []
        if page is not None:
            where.append(f"page {page}")
        if field is not None:
            where.append(f"field {field!r}")
        prefix = f"B3 GetPortfolioDay ({', '.join(where)}): " if where else "B3 GetPortfolioDay: "
        super().__init__(prefix + message + (f" [url {url}]" if url else ""))
        self.page = page
        self.field = field
        self.url = url


class B3Unreachable(Unavailable):
    """Nothing usable came back from B3 in time: DNS failure, refused connection, no answer within the deadline, or
    an oversized body. Unlike ``B3ResponseError`` this is not about what B3 said; nothing is written.

    The first line names the host, what happened and whether retries were made, and the next step; the request URL
    (base64 of base64 JSON, unreadable) is on a line of its own after it.
    """

    advice = ""  # the message's own next step (NEXT_STEP) says what to do, with the deadline B3 sets
    NEXT_STEP = ("Check the network (or B3_BASE_URL), then run again before B3 replaces this session's portfolio: "
                 "B3 serves only the current one.")

    def __init__(self, error: Exception, *, page: int):
        host = getattr(error, "host", "B3")
        if isinstance(error, NetworkError):
            what = f"B3 could not be reached ({error}, page {page})"
        elif isinstance(error, FetchDeadlineExceeded):
            what = f"B3 at {host} did not answer in time: {error} (page {page})"
        else:
            what = f"B3 at {host} sent page {page} too large: {error}"
        super().__init__(f"{what}; nothing was written. {self.NEXT_STEP}\nrequest: {getattr(error, 'url', '')}")
        self.page = page
        self.host = host
        self.attempts = getattr(error, "attempts", None)
        self.url = getattr(error, "url", None)

    def details(self) -> dict:
        return {"host": self.host, "attempts": self.attempts or 0}


# ---- B3's index lists and index history ------------------------------------------------------------------------------
# Raised by sources/b3_stock_index.py and sources/b3_index_history.py.


class B3StockIndexError(BadInput, ValueError):
    """A GetStockIndex answer that does not follow B3's format. Nothing is kept when this is raised."""

    def __init__(self, source: str, message: str, *, row: int | None = None, field: str | None = None):
        where = [source] + ([f"result #{row}"] if row is not None else []) + ([f"field {field!r}"] if field else [])
        super().__init__(f"{', '.join(where)}: {message}")
        self.source = source
        self.row = row
        self.field = field


class B3IndexHistoryError(BadInput, ValueError):
    """A year grid or Evolução download that does not follow B3's format. Nothing is kept when this is raised."""

    def __init__(self, source: str, message: str, *, day: int | None = None, month: int | None = None,
                 line: int | None = None, field: str | None = None):
        where = [source]
        if line is not None:
            where.append(f"line {line}")
        if day is not None or month is not None:
            where.append(f"day {day} month {month}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {message}")
        self.source = source
        self.day = day
        self.month = month
        self.line = line
        self.field = field


# ---- B3's sector classification workbooks ----------------------------------------------------------------------------
# Raised by sources/b3_classification.py (and storage/classification_store.py, which reads the workbooks).


class ClassificationError(BadInput, ValueError):
    """A classification workbook that does not follow any of B3's layouts. Nothing of it is used."""

    def __init__(self, file: str, message: str, sheet: str | None = None, row: int | None = None,
                 column: int | None = None):
        where = [file]
        if sheet is not None:
            where.append(f"sheet {sheet!r}")
        if row is not None:
            # openpyxl only when a column is named: this module imports nothing beyond the standard library
            from openpyxl.utils import get_column_letter

            where.append(f"row {row}" + (f" column {get_column_letter(column)}" if column else ""))
        super().__init__(f"{', '.join(where)}: {message}")
        self.file, self.sheet, self.row, self.column, self.message = file, sheet, row, column, message


# ---- Yahoo's daily chart ---------------------------------------------------------------------------------------------
# Raised by sources/yahoo_chart.py.


class YahooChartError(BadInput):
    """Yahoo answered with something that is not a valid daily chart. Nothing is written when this is raised."""

    def __init__(self, message: str, *, symbol: str | None = None, url: str | None = None,
                 day: dt.date | None = None, field: str | None = None):
        where = [part for part in (symbol, f"bar {day}" if day else None, f"field {field!r}" if field else None)
                 if part]
        prefix = f"Yahoo chart ({', '.join(where)}): " if where else "Yahoo chart: "
        super().__init__(prefix + message + (f" [url {url}]" if url else ""))
        self.symbol, self.url, self.day, self.field = symbol, url, day, field


class YahooUnreachable(Unavailable, YahooChartError):
    """Nothing usable came back in time: DNS failure, refused connection, the deadline, or an oversized body."""


class ProvisionalBarError(NotReady, YahooChartError):
    """A requested session only has a provisional (unfinished) bar yet: run again once Yahoo finalises it."""


# ---- Transforms ------------------------------------------------------------------------------------------------------
# Raised by transforms/index_features.py and transforms/sector_dimension.py (and storage/rebuild.py).


class IndexHistoryGap(Missing, ValueError):
    """The bars skip B3 sessions: rolling windows over them would silently span more days than they say."""


class UnplacedSectors(BadInput, ValueError):
    """Labels or tickers that no classification vintage can place: a sector is never invented."""

    def __init__(self, problems: tuple[str, ...]):
        super().__init__(f"{len(problems)} sector problem(s): " + "; ".join(problems[:20]))
        self.problems = problems


# ---- Raw partitions in the lake --------------------------------------------------------------------------------------
# Raised by storage/layout.py, storage/portfolio_store.py, storage/bar_store.py and the assets that read a raw day.


class NotARawPartition(BadInput, ValueError):
    """A key under ``raw/`` that is not ``raw/date=YYYY-MM-DD/<file>.parquet``; the message says why."""


class RawPartitionMissing(Missing, LookupError):
    """No raw partition stored for the day(s) asked: fetch or import them first."""


class RawPartitionConflict(Refused):
    """The partition already holds different data; overwriting it would lose B3's record of that day."""


class UnreadableObject(BadInput, ValueError):
    """An object that is not a complete, valid Parquet file of the expected schema (e.g. a half-written upload)."""


# ---- Classification vintages -----------------------------------------------------------------------------------------
# Raised by storage/classification_store.py.


class ClassificationConflict(Refused):
    """A vintage already stored with different bytes: a past vintage is never silently replaced."""


# ---- The import of standard history files ----------------------------------------------------------------------------
# Raised by storage/history_import.py.


class UnplaceableTickers(BadInput):
    """A standard file whose tickers cannot all be placed in a sector from the chosen sector source."""

    def __init__(self, file: str, tickers: dict[str, int], message: str):
        listed = ", ".join(f"{cod} (line {line})" for cod, line in tickers.items())
        super().__init__(f"{file}: cannot place {len(tickers)} ticker(s) in a sector: {listed}. {message}")
        self.file = file
        self.tickers = tickers


# ---- Iceberg tables and their staging --------------------------------------------------------------------------------
# Raised by storage/tables.py and storage/staging.py (the commit of staged rows).


class TableError(B3DagsterError, RuntimeError):
    """A table operation that cannot go on; the message says which table, which key and what to do."""


class TableCommitRefused(Refused, TableError):
    """The rows offered for a commit would remove or corrupt data; nothing was committed."""

    advice = "Nothing was committed. Replace the raw day(s) named above, or refine them again, then commit."


class TableCommitConflict(Conflict, TableError):
    """Other commits kept winning the race on the table; nothing of this commit was committed."""


class QueryError(BadInput, TableError):
    """SQL or an --as-of value that cannot run; the message quotes it."""

    advice = "Correct the query (or the --as-of value) and run it again."


class StagingIncomplete(Incomplete, RuntimeError):
    """The staged rows cannot be committed; the message names each key and why."""


# ---- AWS -------------------------------------------------------------------------------------------------------------
# Raised by storage/s3_lake.py, and by the Glue refine resource (defs/resources.py) with storage/glue_job.py's job.


class S3LakeError(ExternalFailure, RuntimeError):
    """S3 refused part of a request (e.g. some objects of a batch delete); its own message is quoted."""


class GlueRefineError(ExternalFailure, RuntimeError):
    """The Glue refine job failed or wrote nothing; Glue's own message is quoted."""


# ---- Alerts ----------------------------------------------------------------------------------------------------------
# Raised by rules/alerts.py.


class AlertConfigError(ConfigError):
    """An alert setting that cannot be used; the message names the setting and the bad value."""


class AlertDeliveryError(Unavailable, RuntimeError):
    """The webhook did not accept the message (network error or non-2xx answer)."""


# ---- The demo --------------------------------------------------------------------------------------------------------
# Raised by cli.py in the demo's second process, which prints it and ends.


class DemoStepsStopped(Incomplete):
    """The demo's second process stopped before a run: its first process failed, was interrupted or ended (the
    message says which). Nothing of that run was started; the demo run again does the steps left out."""
