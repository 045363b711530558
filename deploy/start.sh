#!/usr/bin/env bash
# Start one b3-dagster production process in the foreground (for compose, systemd, ECS and the e2e test alike):
#   deploy/start.sh code-server | daemon | webserver
# Settings, all from the environment:
#   DAGSTER_HOME           folder holding dagster.yaml (deploy/dagster.yaml) - required
#   B3_WORKSPACE           workspace file for daemon/webserver (default: deploy/workspace.yaml beside this script)
#   B3_CODE_SERVER_HOST    code server address (default 127.0.0.1; 0.0.0.0 to listen on every interface)
#   B3_CODE_SERVER_PORT    code server port (default 4000)
#   B3_WEBSERVER_HOST/PORT webserver address (default 127.0.0.1:3000)
#   B3_WEBSERVER_PATH_PREFIX  optional, e.g. /dagster behind a reverse proxy
#   B3_AUTOMATION_DEFAULT  running (default here: this is production) | stopped: do the schedule and sensors start
#                          on their own (the code location's default, for `dg dev` on a laptop, is stopped)
#   plus the code location's own settings (B3_LAKE_ROOT, B3_CATALOG, B3_BASE_URL, alerts: see README).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
: "${DAGSTER_HOME:?set DAGSTER_HOME to the folder holding dagster.yaml}"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || { echo "no dagster.yaml in DAGSTER_HOME=$DAGSTER_HOME" >&2; exit 2; }
export B3_CODE_SERVER_HOST="${B3_CODE_SERVER_HOST:-127.0.0.1}"
export B3_CODE_SERVER_PORT="${B3_CODE_SERVER_PORT:-4000}"
export B3_AUTOMATION_DEFAULT="${B3_AUTOMATION_DEFAULT:-running}"
workspace="${B3_WORKSPACE:-$here/workspace.yaml}"


case "${1:-}" in
  code-server)
    exec dagster code-server start --module-name b3_dagster.definitions --location-name b3_dagster \
      --host "$B3_CODE_SERVER_HOST" --port "$B3_CODE_SERVER_PORT"
    ;;
  daemon)
    exec dagster-daemon run --workspace "$workspace"
    ;;
  webserver)
    args=(--host "${B3_WEBSERVER_HOST:-127.0.0.1}" --port "${B3_WEBSERVER_PORT:-3000}" --workspace "$workspace")
    [ -n "${B3_WEBSERVER_PATH_PREFIX:-}" ] && args+=(--path-prefix "$B3_WEBSERVER_PATH_PREFIX")
    exec dagster-webserver "${args[@]}"
    ;;
  *)
    echo "usage: $0 code-server|daemon|webserver" >&2
    exit 2
    ;;
esac
