#!/usr/bin/env bash
# Creates ./.venv and installs b3-dagster into it (editable). Usage: scripts/setup.sh [--dev]
# Uses uv (installed from PyPI with pip when missing) because it resolves and installs the stack in ~30 s.
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"
python=${PYTHON:-python3}

if ! command -v uv >/dev/null 2>&1 && ! "$python" -m uv --version >/dev/null 2>&1; then
    echo "setup: installing uv" >&2
    "$python" -m pip install --quiet --disable-pip-version-check uv
fi
uv() { if command -v uv >/dev/null 2>&1; then command uv "$@"; else "$python" -m uv "$@"; fi; }

[ -x .venv/bin/python ] || uv venv --quiet --python "$python" .venv
echo "setup: installing b3-dagster${extras} into .venv" >&2
VIRTUAL_ENV="$PWD/.venv" uv pip install --quiet --compile-bytecode -e ".${extras}"
