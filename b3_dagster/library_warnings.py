"""Warnings that libraries address to this project's developers, not to its users, silenced at the edges where
users meet them: the code location (``definitions.py``, loaded by `dagster dev`, the code server, each run and
`dagster definitions validate`) and the command line (``cli.py``). The test suite applies the same filters
(``b3_dagster_tests/conftest.py``), so that its summary shows only warnings nobody has looked at yet. Plain Python
(no dagster import), matched by message so that every other warning still shows."""

from __future__ import annotations

import builtins
import warnings

# (message regex, category, module regex), each with the reason it is nobody's action here
LIBRARY_WARNINGS: tuple[tuple[str, str, str], ...] = (
    # Dagster 1.13 marks `backfill_policy` beta (BetaWarning, once per decorated asset). The refine, table and index
    # assets use BackfillPolicy.single_run() on purpose: they write their own storage (README, "Backfills").
    (r"Parameter `backfill_policy` of function", "Warning", ""),
    # exchange_calendars (4.x) reads tz-aware Series.values when it builds the BVMF calendar, which pandas 3.1
    # deprecates (Pandas4Warning, a DeprecationWarning): a pandas/exchange_calendars matter.
    (r"Series\.values returning an ndarray", "DeprecationWarning", ""),
    ("", "FutureWarning", r"exchange_calendars(\.|$)"),
    # Dagster 1.13.27 calls its own deprecated or preview APIs: InitResourceContext.replace_config (a resource that
    # holds another, as the catalog holds the lake) and the Pipes session of the Glue refine.
    (r"InitResourceContext\.dagster_run is deprecated", "DeprecationWarning", ""),
    (r"AssetExecutionContext\.run_id is deprecated", "DeprecationWarning", ""),
    (r"Function `PipesMessageReader\.expected_writer_count` is currently in preview", "Warning", ""),
)


def quiet_library_warnings() -> None:
    for message, category, module in LIBRARY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=getattr(builtins, category), module=module)


def as_pytest_filterwarnings() -> list[str]:
    """The same filters in pytest's ``filterwarnings`` syntax (``action:message:category:module``)."""
    return [f"ignore:{message}:{category}:{module}" for message, category, module in LIBRARY_WARNINGS]
