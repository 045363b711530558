"""The code location: every definition under ``b3_dagster/defs/``, found by ``dg.load_from_defs_folder``.

Resources, and the environment -> resources choice (local folder + SQLite Iceberg catalog, or S3 + Glue catalog), live
in ``defs/resources.py``. ``build_definitions(overrides)`` lets the CLI and the tests supply concrete resources
(e.g. a local replay of B3) to the very same assets, jobs, schedules and sensors.
"""

import gc
from pathlib import Path
from typing import Mapping, Optional

import dagster as dg

from b3_dagster.library_warnings import quiet_library_warnings

# Every process that loads the code location (the code server, each run worker it starts, `dg dev`, `dagster
# definitions validate`, the CLI) imports pandas, pyarrow, pyiceberg and exchange_calendars here and builds the
# definitions: about half a million objects that live as long as the process, and next to no garbage. Python's
# collector would walk them again and again while they are made, and once more at exit. It is paused until the
# definitions are built; then what they hold is frozen (left out of later collections) and it runs again. Measured
# 2026-12-01 with `python -c "import dagster; import b3_dagster.definitions"`, 4 alternating pairs: 4.6-5.7 s of CPU
# before, 3.3-3.5 s after. A caller that had the collector off (the demo's processes) keeps it off.
_COLLECTING = gc.isenabled()
gc.disable()

# Before the assets are defined (their decorators warn at import): `dg dev`, the code server and `dagster
# definitions validate` load this module, and users must not meet library warnings addressed to developers.
quiet_library_warnings()


def build_definitions(overrides: Optional[Mapping[str, object]] = None,
                      loaded: Optional[dg.Definitions] = None) -> dg.Definitions:
    """Everything in ``defs/``; ``overrides`` replaces resources by key (the CLI's replays, the tests' lakes).
    ``loaded``: an earlier ``build_definitions()`` of this process to reuse instead of loading ``defs/`` again (the
    resources are chosen from the settings when ``defs/`` loads, so only within one command's settings)."""
    if loaded is None:
        loaded = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
    if not overrides:
        return loaded
    return dg.Definitions(
        assets=loaded.assets, asset_checks=loaded.asset_checks, jobs=loaded.jobs, schedules=loaded.schedules,
        sensors=loaded.sensors, loggers=loaded.loggers, executor=loaded.executor, metadata=loaded.metadata,
        resources={**(loaded.resources or {}), **overrides},
    )


try:
    defs = build_definitions()
finally:
    if _COLLECTING:
        gc.freeze()
        gc.enable()
