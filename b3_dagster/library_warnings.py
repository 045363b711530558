"""Warnings that libraries address to this project's developers, not to its users, silenced at the edges where
users meet them: the code location (``definitions.py``, loaded by `dagster dev`, the code server and
`dagster definitions validate`) and the command line (``cli.py``). Plain Python (no dagster import), matched by
message so that every other warning still shows; the tests run without these filters and keep seeing them."""

from __future__ import annotations

import warnings


def quiet_library_warnings() -> None:
    # Dagster 1.13 marks `backfill_policy` beta (BetaWarning, once per decorated asset). The refine, table and index
    # assets use BackfillPolicy.single_run() on purpose: they write their own storage (README, "Backfills").
    warnings.filterwarnings("ignore", category=Warning, message=r"Parameter `backfill_policy` of function")
    # exchange_calendars (4.x) reads tz-aware Series.values when it builds the BVMF calendar, which pandas 3.1
    # deprecates (Pandas4Warning, a DeprecationWarning): a pandas/exchange_calendars matter, nothing to act on here.
    warnings.filterwarnings("ignore", category=DeprecationWarning, message=r"Series\.values returning an ndarray")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"exchange_calendars(\.|$)")
