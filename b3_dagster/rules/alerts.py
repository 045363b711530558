"""Alerts when a trading day is missed or a run fails: which days are due, and the Slack-compatible messages.

Plain Python (no dagster): ``b3_dagster.defs.alerts.sensors`` turns these into sensors. A day is *due* once its freshness
deadline (a time of that trading day in America/Sao_Paulo) has passed; only B3 sessions are ever due, so weekends
and holidays never alert.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import quote
from zoneinfo import ZoneInfo

from b3_dagster.calendar import B3_TIMEZONE, sessions
from b3_dagster.errors import AlertConfigError

_DEADLINE = re.compile(r"^(?P<hour>[01]\d|2[0-3]):(?P<minute>[0-5]\d)$")
MAX_REASON_CHARS = 600


def parse_deadline(value: str, setting: str = "B3_FRESHNESS_DEADLINE") -> dt.time:
    """``"HH:MM"`` (24 h, America/Sao_Paulo) -> ``time``."""
    match = _DEADLINE.match(value.strip()) if isinstance(value, str) else None
    if not match:
        raise AlertConfigError(f"{setting}={value!r} is not a HH:MM time of day (e.g. 19:30)")
    return dt.time(int(match["hour"]), int(match["minute"]))


def deadline_of(day: dt.date, deadline: dt.time) -> dt.datetime:
    """The moment ``day``'s partition must exist by: ``deadline`` on that day, São Paulo time."""
    return dt.datetime.combine(day, deadline, tzinfo=ZoneInfo(B3_TIMEZONE))


def due_sessions(now: dt.datetime, deadline: dt.time, lookback_sessions: int,
                 since: dt.date | None = None) -> list[dt.date]:
    """The last ``lookback_sessions`` B3 sessions whose deadline has passed at ``now`` (oldest first), none before
    ``since``. Weekends and holidays are never sessions, so they are never due."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if lookback_sessions < 1:
        raise AlertConfigError(f"lookback_sessions must be at least 1, got {lookback_sessions}")
    local_now = now.astimezone(ZoneInfo(B3_TIMEZONE))
    # lookback sessions fit in 3x as many calendar days plus a fortnight of holidays
    window_start = local_now.date() - dt.timedelta(days=3 * lookback_sessions + 14)
    if since is not None:
        window_start = max(window_start, since)
    candidates = sessions(window_start, local_now.date())
    due = [day for day in candidates if deadline_of(day, deadline) <= local_now]
    return due[-lookback_sessions:]


# Where the UI is when B3_DAGSTER_UI_URL is not set: the port given to `dagster dev` through the environment
# (click reads DAGSTER_CLI_DEV_PORT for `dagster dev -p`, and the code location inherits it; a `-p` on the command
# line is not visible to the code location), or dagster-webserver's own DAGSTER_WEBSERVER_PORT.
UI_PORT_VARIABLES = ("DAGSTER_CLI_DEV_PORT", "DAGSTER_WEBSERVER_PORT")
DEFAULT_UI_PORT = "3000"


def ui_base_url(environ: Mapping[str, str]) -> str:
    """The Dagster UI as users reach it, for links in alerts: B3_DAGSTER_UI_URL, else localhost on the chosen port."""
    if environ.get("B3_DAGSTER_UI_URL"):
        return environ["B3_DAGSTER_UI_URL"]
    port = next((environ[name] for name in UI_PORT_VARIABLES if environ.get(name, "").strip().isdigit()),
                DEFAULT_UI_PORT)
    return f"http://localhost:{port.strip()}"


@dataclass(frozen=True)
class UiLinks:
    """Links into the Dagster UI (``base_url`` as users reach it, e.g. https://dagster.example.com)."""

    base_url: str

    def run(self, run_id: str) -> str:
        return f"{self.base_url.rstrip('/')}/runs/{run_id}"

    def asset_partition(self, asset: str, partition: str) -> str:
        return (f"{self.base_url.rstrip('/')}/assets/{quote(asset)}?view=partitions"
                f"&partition={quote(partition)}")


def _shorten(text: str, limit: int = MAX_REASON_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _slack(title: str, fields: dict[str, str], link_label: str, link: str) -> dict:
    """Slack incoming-webhook JSON: ``text`` (the notification line, enough on its own) plus ``blocks``."""
    lines = [f"*{name}:* {value}" for name, value in fields.items()]
    return {
        "text": f"{title} | " + " | ".join(f"{name}: {value}" for name, value in fields.items()) + f" | {link}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"<{link}|{link_label}>"}},
        ],
    }


# Dagster's hidden job names start with "__": __ASSET_JOB (a run launched from the asset graph or a backfill in the
# UI), __ephemeral_asset_job__ (dg.materialize).
IMPLICIT_ASSET_JOB_PREFIX = "__"


def job_label(job_name: str, assets: list[str] | None = None) -> str:
    """What to call the run's job in a message: Dagster's hidden jobs (``__ASSET_JOB`` for a *Materialize* click or
    a backfill in the UI) mean nothing to a reader, so such a run is named by the assets it materialised."""
    if not job_name.startswith(IMPLICIT_ASSET_JOB_PREFIX):
        return job_name
    names = sorted(assets or [])
    if not names:
        return "assets (launched from the asset graph)"
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"{'asset' if len(names) == 1 else 'assets'} {shown}"


def run_failure_message(*, job: str, run_id: str, partition: str | None, reason: str, links: UiLinks) -> dict:
    return _slack(
        f"b3-dagster: run of {job} failed",
        {"partition": partition or "(no partition)", "reason": _shorten(reason), "run": run_id},
        "Open the run in Dagster", links.run(run_id),
    )


def missed_day_message(*, asset: str, day: dt.date, deadline: dt.time, reason: str, links: UiLinks,
                       run_id: str | None = None) -> dict:
    link = links.run(run_id) if run_id else links.asset_partition(asset, day.isoformat())
    return _slack(
        f"b3-dagster: trading day {day.isoformat()} missed",
        {"partition": day.isoformat(), "reason": _shorten(reason),
         "deadline": f"{deadline:%H:%M} {B3_TIMEZONE}"},
        "Open the last run in Dagster" if run_id else "Open the partition in Dagster", link,
    )
