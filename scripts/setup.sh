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
    "$python" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore uv
fi
uv() { if command -v uv >/dev/null 2>&1; then command uv "$@"; else "$python" -m uv "$@"; fi; }

[ -x .venv/bin/python ] || uv venv --quiet --python "$python" .venv
# scripts/test.sh calls this before every run: when the declared dependencies and extras are those installed last
# time, the install (~2-3 s CPU, ~6 s on a loaded machine, spent rebuilding the editable wheel) is skipped.
stamp=".venv/.b3-installed"
declared="$(cat pyproject.toml setup.py | sha256sum | cut -d' ' -f1)"
wanted="${declared} ${extras}"
installed="$(cat "$stamp" 2>/dev/null || true)"
# An install with the dev extras also serves the plain one, so the demo after the tests installs nothing.
if [ "$installed" != "$wanted" ] && [ "$installed" != "${declared} [dev]" ]; then
    echo "setup: installing b3-dagster${extras} into .venv" >&2
    VIRTUAL_ENV="$PWD/.venv" uv pip install --quiet --compile-bytecode -e ".${extras}"
    echo "$wanted" > "$stamp"
fi
# Bytecode for the project's own code too (--compile-bytecode covers only the installed packages): where
# PYTHONDONTWRITEBYTECODE=1 is set, every `b3-dagster`/Dagster subprocess the tests start would otherwise compile
# the modules it imports again. compileall only rewrites what changed; stale files are recompiled in memory anyway.
.venv/bin/python -m compileall -q -j 0 b3_dagster >/dev/null
