#!/usr/bin/env bash
# One command on a fresh machine: install what the tests need (system packages when run as root, .venv with the
# dev extras), then run the whole test suite. Extra arguments go to pytest (e.g. -m "not slow" for a quick run).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -eq 0 ]; then
    bash scripts/install_system_deps.sh
fi
bash scripts/setup.sh --dev
exec .venv/bin/python -m pytest "$@"
