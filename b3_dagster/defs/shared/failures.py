"""The one place where the project's errors (``b3_dagster.errors``) become Dagster failures.

Every asset of the package carries ``@fails_clearly`` (under its ``@dg.asset``/``@asset_with_checks``): a
``B3DagsterError`` raised anywhere below it ends the step with a ``dg.Failure`` whose description is the error's
one-paragraph explanation (what went wrong, where, and what to do), with ``retry_helps`` and the error's own facts in
the metadata. A retry policy applies only when a retry can help (``allow_retries``). The failure is raised ``from None``:
the user reads the message, not a traceback of the library code behind it (the original traceback goes to the debug
log). Other exceptions (bugs) are left alone, with their traceback, as they should be.
"""

from __future__ import annotations

import functools
import inspect
import logging
import traceback
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

import dagster as dg

from b3_dagster.errors import B3DagsterError

F = TypeVar("F", bound=Callable)

log = logging.getLogger(__name__)


def failure(error: B3DagsterError, **extra) -> dg.Failure:
    """The ``dg.Failure`` that reports ``error``: its explanation, whether a retry helps, its details and ``extra``."""
    metadata = {"error": type(error).__name__, "retry_helps": error.retryable}
    metadata.update({key: value for key, value in {**error.details(), **extra}.items() if value is not None})
    return dg.Failure(description=error.explain(), metadata=metadata, allow_retries=error.retryable)


@contextmanager
def errors_as_failures() -> Iterator[None]:
    """Within the block, a project error ends the step as ``failure(error)``."""
    try:
        yield
    except B3DagsterError as error:
        log.debug("%s", "".join(traceback.format_exception(error)))
        raise failure(error) from None


def fails_clearly(fn: F) -> F:
    """Decorate an asset's function (below its ``@dg.asset``) so that project errors become ``failure(error)``.
    Generator functions stay generators, so that Dagster still sees their yielded results."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def generator(*args, **kwargs):
            with errors_as_failures():
                return (yield from fn(*args, **kwargs))
        return generator  # type: ignore[return-value]

    @functools.wraps(fn)
    def function(*args, **kwargs):
        with errors_as_failures():
            return fn(*args, **kwargs)
    return function  # type: ignore[return-value]
