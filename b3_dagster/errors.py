"""The project's errors: one base class, and a few kinds that say whether running again can help.

Every error the package raises on purpose derives from ``B3DagsterError`` through one of the kinds below. Each kind
states, as a class attribute, whether a retry can help (``retryable``) and what to do (``advice``): the assets turn
any of them into one clear ``dg.Failure`` in one place (``defs/shared/failures.py``), with ``retryable`` in its metadata and
as the run's retry decision; the command line prints the same message without a traceback.

The concrete errors stay next to the code that raises them (``sources/``, ``storage/``, ...), deriving from these
kinds, and keep their built-in base too (``ValueError``, ``LookupError``, ...) so that existing ``except`` clauses still
hold. Plain Python: no dagster import.
"""

from __future__ import annotations

from typing import ClassVar, Union

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
