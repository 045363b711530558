#!/usr/bin/env bash
# One command on a fresh machine: set up .venv, then run the whole pipeline end to end on the local default
# (lake in ./data, Iceberg tables in a SQLite catalog, queried by DuckDB), replaying recorded real B3 and Yahoo
# answers: no network needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export DAGSTER_HOME="${DAGSTER_HOME:-$PWD/.dagster_home}"  # `dg dev` shows these runs afterwards
mkdir -p "$DAGSTER_HOME"
exec .venv/bin/b3-dagster --lake "${B3_LAKE_ROOT:-data}" demo "$@"
