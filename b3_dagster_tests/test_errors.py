"""One error base (b3_dagster/errors.py): every error class of the package derives from it through a kind that says
whether a retry can help, and explains itself in one paragraph that says what to do."""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import b3_dagster
from b3_dagster import errors
from b3_dagster.errors import (
    B3ResponseError,
    BodyTooLarge,
    NetworkError,
    RawPartitionMissing,
    TableCommitConflict,
    TableCommitRefused,
    TableError,
)

# Not project errors on purpose: the Glue script runs inside AWS Glue without the package; a private control-flow
# signal never leaves its module.
EXEMPT = {"b3_dagster.glue_jobs.refine_sectors.JobArgumentError", "b3_dagster.sources.http._RequestExpired"}


def package_exceptions() -> list[type[BaseException]]:
    found = {}
    for module in pkgutil.walk_packages(b3_dagster.__path__, "b3_dagster."):
        if module.name.endswith("__main__"):
            continue
        loaded = importlib.import_module(module.name)
        for _, value in inspect.getmembers(loaded, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__.startswith("b3_dagster."):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return [value for name, value in sorted(found.items()) if name not in EXEMPT]


def test_every_error_of_the_package_derives_from_the_project_base_through_one_kind():
    classes = package_exceptions()
    assert len(classes) > 30, "the scan finds the package's errors"
    outside = [c.__qualname__ for c in classes if not issubclass(c, errors.B3DagsterError)]
    assert not outside, f"derive these from a kind in b3_dagster/errors.py: {outside}"
    for error in classes:
        if error is errors.B3DagsterError or error in errors.KINDS or error is TableError:
            continue
        assert any(issubclass(error, kind) for kind in errors.KINDS), f"{error.__qualname__} has no kind"
        assert isinstance(error.retryable, bool)


def test_every_error_class_is_defined_in_the_errors_module():
    defined_elsewhere = [f"{c.__module__}.{c.__qualname__}" for c in package_exceptions()
                         if c.__module__ != errors.__name__]
    assert not defined_elsewhere, f"move these into b3_dagster/errors.py and import them from there: {defined_elsewhere}"


def _looks_like_an_exception(base: ast.expr) -> bool:
    name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")
    known = getattr(errors, name, None) or getattr(builtins, name, None)
    return (isinstance(known, type) and issubclass(known, BaseException)) or name.endswith(("Error", "Exception"))


def test_no_other_source_file_defines_an_exception_even_inside_a_function():
    """Read from the source, so that a class defined in a function (which an import scan cannot see) counts too."""
    package = Path(b3_dagster.__file__).parent
    found = []
    for path in sorted(package.rglob("*.py")):
        if path == Path(errors.__file__) or "recordings" in path.parts:
            continue
        module = ".".join(path.relative_to(package.parent).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and any(_looks_like_an_exception(b) for b in node.bases):
                found.append(f"{module}.{node.name}")
    assert set(EXEMPT) <= set(found), "the scan sees the two exceptions kept out on purpose"
    assert sorted(set(found) - EXEMPT) == [], "define errors in b3_dagster/errors.py only"


def test_every_error_is_imported_from_the_errors_module_only():
    """One place each: no module re-exports an error it imported (``from b3_dagster.storage.x import SomeError``)."""
    names = {name for name, value in vars(errors).items()
             if isinstance(value, type) and issubclass(value, BaseException)}
    root = Path(b3_dagster.__file__).parents[1]
    found = []
    for folder in ("b3_dagster", "b3_dagster_tests", "benchmarks", "scripts"):
        for path in sorted((root / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("b3_dagster") \
                        and node.module != errors.__name__:
                    found += [f"{path.relative_to(root)}: {node.module}.{alias.name}" for alias in node.names
                              if alias.name in names]
    assert not found, f"import these from b3_dagster.errors: {found}"


@pytest.mark.parametrize("error, retryable", [
    (NetworkError("refused", url="http://b3.example/x", attempts=3, cause=OSError()), True),
    (BodyTooLarge("too large", url="http://b3.example/x", attempts=1), False),
    (B3ResponseError("lacks 'part'", page=1), False),
    (RawPartitionMissing("no raw day 2025-04-07"), False),
    (TableCommitRefused("2025-04-07: partial"), False),
    (TableCommitConflict("lost the race 3 times"), True),
    (errors.TableHasNoRows("default.ibov_refined has no rows yet"), False),
])
def test_each_error_says_whether_a_retry_can_help(error, retryable):
    assert error.retryable is retryable


def test_the_old_builtin_bases_still_catch_them():
    assert issubclass(RawPartitionMissing, LookupError)
    assert issubclass(TableCommitRefused, RuntimeError)
    assert issubclass(errors.ConfigError, ValueError)


def test_table_has_no_rows_is_not_a_missing_raw_partition():
    assert issubclass(errors.TableHasNoRows, errors.Missing)
    assert not issubclass(errors.TableHasNoRows, RawPartitionMissing)


def test_the_explanation_adds_what_to_do_once():
    error = errors.Unavailable("Yahoo could not be reached (connection refused)")
    assert error.explain() == ("Yahoo could not be reached (connection refused). Nothing was written. This can pass "
                               "on its own: run again later.")
    said = errors.Unavailable("Yahoo could not be reached; nothing was written")
    assert said.explain().lower().count("nothing was written") == 1, "a sentence the message says is not repeated"


def test_the_explanation_keeps_further_lines_after_the_paragraph():
    error = errors.BadInput("page 1 lacks 'part'\nrequest: http://b3.example/very/long")
    first, second = error.explain().splitlines()
    assert first.startswith("page 1 lacks 'part'. Nothing was written.")
    assert second == "request: http://b3.example/very/long"


def test_an_instance_may_carry_its_own_advice_and_details():
    error = errors.NotReady("B3 served 2025-04-04, not 2025-04-07", advice="", served_date="2025-04-04")
    assert error.explain() == "B3 served 2025-04-04, not 2025-04-07"
    assert error.details() == {"served_date": "2025-04-04"}
    assert errors.NotReady("x").advice, "the instance's advice did not replace the kind's"
