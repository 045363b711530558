"""The automation default (``B3_AUTOMATION_DEFAULT``): whether schedules and sensors start running."""

import dagster as dg

from b3_dagster import settings
from b3_dagster.errors import ConfigError

AUTOMATION_DEFAULT_SETTING = "B3_AUTOMATION_DEFAULT"
AUTOMATION_DEFAULTS = ("stopped", "running")


def automation_default() -> str:
    """Whether the schedule and the sensors start on their own (read at load). ``stopped`` (the default) on a
    laptop: `dagster dev` on the demo's lake must not start calling an offline B3 or re-refining the demo's days
    until the user turns them on in the UI. ``running`` where it is production: deploy/ sets it."""
    value = settings.get(AUTOMATION_DEFAULT_SETTING).lower()
    if value not in AUTOMATION_DEFAULTS:
        raise ConfigError(f"{AUTOMATION_DEFAULT_SETTING}={value!r}: expected one of "
                          f"{', '.join(AUTOMATION_DEFAULTS)} (running in production, stopped on a laptop)")
    return value


def default_schedule_status() -> dg.DefaultScheduleStatus:
    return dg.DefaultScheduleStatus.RUNNING if automation_default() == "running" else dg.DefaultScheduleStatus.STOPPED


def default_sensor_status() -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus.RUNNING if automation_default() == "running" else dg.DefaultSensorStatus.STOPPED
