#!/usr/bin/env bash
# One command on a fresh machine: install what the tests need (system packages when run as root, .venv with the
# dev extras), then run the whole test suite. Extra arguments go to pytest (e.g. -m "not slow" for a quick run).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -eq 0 ]; then
    bash scripts/install_system_deps.sh
fi
bash scripts/setup.sh --dev
# --durations: every run (CI included) ends with its 15 slowest tests; a later --durations=N overrides it.
# Three pytest-xdist workers on 2 cores: the tests that start real processes share one worker
# (b3_dagster_tests/conftest.py) and the production test, on another, spends much of its 2 min waiting on the shipped
# deploy/ intervals; a third worker runs the rest meanwhile (README, "Tests"). B3_TEST_WORKERS=0 runs everything in
# this one process (e.g. with pdb).
# The code location loads and validates (dg's own check of the defs folder, and Dagster's) before any test.
# Dagster's own load-and-validate of the same code location (it asks for dg check defs instead) runs beside it:
# each loads the code location in its own process, so on 2 cores they take the time of one; either failing stops here.
# Neither needs the user's instance: they get a throwaway DAGSTER_HOME with telemetry off, so that a first run on a
# machine prints no telemetry banner and writes no instance id (the tests make their own instances).
check_home="$(mktemp -d)"
trap 'rm -rf "$check_home"' EXIT
printf 'telemetry:\n  enabled: false\n' > "$check_home/dagster.yaml"
DAGSTER_HOME="$check_home" .venv/bin/dg check defs &
dg_check=$!
DAGSTER_HOME="$check_home" PYTHONWARNINGS="ignore:Function \`definitions_validate_command\` is superseded" \
    .venv/bin/dagster definitions validate &
validate=$!
wait "$dg_check"
wait "$validate"
rm -rf "$check_home"  # the trap does not outlive the exec below
# pytest rewrites every test module's asserts when it imports it and caches the result as bytecode, unless
# PYTHONDONTWRITEBYTECODE is set (as on some machines): then each pytest process (each xdist worker) rewrites all
# of them again, about 3 s of CPU per process. Unset here, the cache lands in the (git-ignored) __pycache__ folders.
unset PYTHONDONTWRITEBYTECODE
workers="${B3_TEST_WORKERS:-3}"
if [ "$workers" = "0" ]; then
    exec .venv/bin/python -m pytest --durations=15 "$@"
fi
exec .venv/bin/python -m pytest -n "$workers" --dist loadgroup --durations=15 "$@"
