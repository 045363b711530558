"""Every setting of b3-dagster, declared once: its environment variable, its default and what it does.

Plain Python (no dagster import), so that the command line's quick commands (`b3-dagster query`, `snapshots`) and
``b3_dagster.connect()`` read the same declaration as the code location without loading Dagster.

Three kinds of reader use it, and ``read`` says which a setting has:
- ``run``: the resources read it when a run starts (``dg.EnvVar`` when exported, see ``defs/resources.setting``), so a
  change needs no reload of the code location;
- ``load``: read once when the code location loads, because it shapes the definitions (a cron string, a partition
  dimension); a change needs a reload;
- ``deploy``: read by the deploy files (``deploy/start.sh``, ``deploy/aws/dagster.yaml``), not by Python.

No ``.env`` is shipped: the dagster CLI would load ./.env over exported variables, and an exported
B3_LAKE_ROOT=s3://... must win. Exported variables always win over the defaults here.

``python -m b3_dagster.settings --markdown`` prints the README's table of settings, ``--env-example`` the
``.env.example`` file; a test keeps both (and ``deploy/systemd/b3-dagster.env.example``) equal to this declaration.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Literal, Mapping, Optional

Read = Literal["run", "load", "deploy"]

# The hosts, declared once: the sources' clients take them as their default, and they are the defaults of
# B3_BASE_URL and B3_YAHOO_BASE_URL below.
B3_HOST = "https://sistemaswebb3-listados.b3.com.br"  # GetPortfolioDay, GetStockIndex, the index history, the sectors
YAHOO_HOST = "https://query1.finance.yahoo.com"


@dataclass(frozen=True)
class Setting:
    name: str
    default: Optional[str]  # None: unset unless exported
    doc: str
    read: Read = "run"
    group: str = "code location"
    shown_default: Optional[str] = None  # how the README shows a default computed elsewhere (e.g. another variable)
    secret: bool = False  # never shown in the UI (dg.EnvVar) nor written in an example file
    production: Optional[str] = None  # the value every deploy/ file sets, when production differs from a laptop

    def value(self, environ: Mapping[str, str] | None = None) -> Optional[str]:
        """The exported value (blank counts as unset), else the default."""
        environ = os.environ if environ is None else environ
        exported = (environ.get(self.name) or "").strip()
        return exported or self.default

    def exported(self, environ: Mapping[str, str] | None = None) -> bool:
        environ = os.environ if environ is None else environ
        return bool((environ.get(self.name) or "").strip())


SETTINGS: tuple[Setting, ...] = (
    # the code location: where the data lives and where it comes from
    Setting("B3_LAKE_ROOT", "data", "a folder, or `s3://bucket/prefix` for the AWS home"),
    Setting("B3_CATALOG", "sql", "the Iceberg catalog: `sql` (SQLite `iceberg_catalog.db` under the lake root; "
            "`duckdb`, its name before the Iceberg tables, means the same) or `glue` (Glue Data Catalog)"),
    Setting("B3_BASE_URL", B3_HOST, "where the B3 clients send `GetPortfolioDay`, `GetStockIndex` and the index "
            "history requests (the demo and the tests point it at a replay)"),
    Setting("B3_YAHOO_BASE_URL", YAHOO_HOST, "where the chart client sends requests"),
    Setting("B3_PARTITIONS_START", "2022-01-03", "first partition: the first session of 2022; older portfolios come "
            "from CSV imports", read="load"),
    Setting("B3_INDICES", "IBOV", "the B3 indices of the `b3_indices` group, comma-separated (e.g. "
            "`IBOV,IBXX,SMLL`): a partition dimension of `index_history_raw`", read="load"),
    Setting("B3_SNAPSHOT_CRON", "0 10 * * *", "when the schedule ticks, in America/Sao_Paulo (it skips days B3 is "
            "closed)", read="load"),
    Setting("B3_RAW_SENSOR_INTERVAL_SECONDS", "60", "how often the raw-partition sensor lists `raw/`", read="load"),
    Setting("B3_AUTOMATION_DEFAULT", "stopped", "`running` or `stopped`: whether the schedule and the sensors start "
            "on their own; every `deploy/` file sets `running`", read="load", production="running"),
    Setting("B3_LOG_LEVEL", "CRITICAL", "the console log level of the runs `b3-dagster demo` makes: by default only "
            "the demo's own line per run (a failure's message included) and never Dagster's stack traces, also not "
            "on Ctrl-C in the middle of a run; every line stays in the run's events (`dg dev`). `INFO` shows them "
            "all", group="command line"),
    # AWS (README, "On AWS")
    Setting("AWS_REGION", None, "the AWS region of S3, Glue and Athena (boto3's own `AWS_DEFAULT_REGION` when unset)",
            read="load", group="AWS", shown_default="`AWS_DEFAULT_REGION`"),
    Setting("B3_GLUE_DATABASE", "default", "the Glue database of `default.tb_ibov_refined` (with `B3_CATALOG=glue`)",
            read="load", group="AWS"),
    Setting("B3_REFINE_ENGINE", "duckdb", "`duckdb` (refine in the Dagster process) or `glue` (the AWS Glue job, "
            "through Dagster Pipes)", read="load", group="AWS"),
    Setting("B3_GLUE_JOB", "b3-refine-sectors", "the Glue job the `glue` refine engine starts", read="load",
            group="AWS"),
    Setting("B3_PIPES_BUCKET", None, "the bucket of the Dagster Pipes context (under `dagster-pipes/`); needed by the "
            "`glue` refine engine", read="load", group="AWS"),
    # alerts (README, "Run in production")
    Setting("B3_ALERT_WEBHOOK_URL", None, "Slack-compatible incoming webhook; unset: alerts only in the sensor log",
            group="alerts", secret=True),
    Setting("B3_DAGSTER_UI_URL", None, "the UI as users reach it, for the links in alerts", group="alerts",
            shown_default="`http://localhost:` + `DAGSTER_CLI_DEV_PORT` (else 3000)"),
    Setting("B3_FRESHNESS_DEADLINE", "12:00", "HH:MM, São Paulo time, by which a session's raw partition must exist "
            "(after the schedule's `B3_SNAPSHOT_CRON`, well before B3 serves the next session)", group="alerts"),
    Setting("B3_ALERT_LOOKBACK_SESSIONS", "5", "how many past sessions the missed-day alert watches (at least 1)",
            group="alerts"),
    Setting("B3_ALERT_SINCE", None, "YYYY-MM-DD (the go-live): no alert for sessions before it", group="alerts"),
    Setting("B3_ALERT_INTERVAL_SECONDS", "60", "how often the alert sensors run", read="load", group="alerts"),
    # the deploy files (deploy/start.sh, deploy/systemd, deploy/aws)
    Setting("B3_WORKSPACE", None, "workspace file of the daemon and the webserver", read="deploy", group="deploy",
            shown_default="`deploy/workspace.yaml`"),
    Setting("B3_CODE_SERVER_HOST", "127.0.0.1", "code server address (`0.0.0.0` to listen on every interface)",
            read="deploy", group="deploy"),
    Setting("B3_CODE_SERVER_PORT", "4000", "code server port", read="deploy", group="deploy"),
    Setting("B3_WEBSERVER_HOST", "127.0.0.1", "webserver address", read="deploy", group="deploy"),
    Setting("B3_WEBSERVER_PORT", "3000", "webserver port", read="deploy", group="deploy"),
    Setting("B3_WEBSERVER_PATH_PREFIX", None, "e.g. `/dagster` behind a reverse proxy", read="deploy",
            group="deploy"),
    Setting("B3_RUN_ROLE_ARN", None, "on ECS: the role the code server and the runs assume (the lake's)",
            read="deploy", group="deploy"),
    Setting("B3_COMPUTE_LOGS_BUCKET", None, "on ECS: the bucket of the runs' compute logs", read="deploy",
            group="deploy"),
    Setting("B3_RUN_TASK_DEFINITION", None, "on ECS: the task definition of the runs", read="deploy",
            group="deploy"),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def get(name: str, environ: Mapping[str, str] | None = None) -> Optional[str]:
    """The setting's exported value, else its declared default."""
    return BY_NAME[name].value(environ)


def default(name: str) -> Optional[str]:
    return BY_NAME[name].default


def region(environ: Mapping[str, str] | None = None) -> Optional[str]:
    """``AWS_REGION``, else boto3's own ``AWS_DEFAULT_REGION`` (boto3 reads only the latter by itself)."""
    environ = os.environ if environ is None else environ
    return get("AWS_REGION", environ) or (environ.get("AWS_DEFAULT_REGION") or "").strip() or None


# The local home's defaults, as the command line exports them for its own runs: the code location's settings read at
# run time (where the lake is, which catalog, which hosts). The others are read through ``get`` with their defaults.
LOCAL_DEFAULTS: dict[str, str] = {s.name: s.default for s in SETTINGS
                                  if s.group == "code location" and s.read == "run" and s.default is not None}

READ_WHEN = {"run": "at run time", "load": "when the code location loads", "deploy": "by the deploy files"}
TABLE_START = "<!-- settings table: generated by `python -m b3_dagster.settings --markdown`; do not edit -->"
TABLE_END = "<!-- end of settings table -->"


def _shown(setting: Setting) -> str:
    if setting.shown_default:
        return setting.shown_default
    return f"`{setting.default}`" if setting.default is not None else "unset"


def markdown() -> str:
    """The README's table of settings, between its marker comments."""
    lines = [TABLE_START, "", "| variable | default | read | meaning |", "|---|---|---|---|"]
    group = None
    for setting in SETTINGS:
        if setting.group != group:
            group = setting.group
            lines.append(f"| **{group}** | | | |")
        lines.append(f"| `{setting.name}` | {_shown(setting)} | {READ_WHEN[setting.read]} | {setting.doc} |")
    return "\n".join([*lines, "", TABLE_END])


def env_example() -> str:
    """``.env.example``: every setting of the code location and the command line, commented out, at its default."""
    lines = [
        "# Generated by `python -m b3_dagster.settings --env-example` from b3_dagster/settings.py (do not edit).",
        "# Example only: this project ships no .env. The defaults below are declared in b3_dagster/settings.py, and",
        "# exported variables always win over them.",
        "# Beware: the dagster CLI loads ./.env *over* exported variables when run from this folder. If you copy",
        "# this file to .env, every value you uncomment there overrides what you export (B3_LAKE_ROOT=s3://... on AWS).",
    ]
    group = None
    for setting in SETTINGS:
        if setting.read == "deploy":
            continue
        if setting.group != group:
            group = setting.group
            lines.append(f"\n# {group}")
        lines.append(f"# {setting.name}={'' if setting.secret or setting.default is None else setting.default}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m b3_dagster.settings", description=__doc__.splitlines()[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--markdown", action="store_true", help="the README's table of settings")
    what.add_argument("--env-example", action="store_true", help="the .env.example file")
    args = parser.parse_args(argv)
    print(markdown() if args.markdown else env_example(), end="\n" if args.markdown else "")


if __name__ == "__main__":
    main()
