#!/usr/bin/env bash
# System packages the slow end-to-end tests need: PostgreSQL 15 (server binaries) and Chromium.
# Idempotent and quiet: installs only what is missing; prints one line per package it installs.
set -euo pipefail

need=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql)
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install_system_deps: missing ${need[*]}; run as root (or: sudo apt-get install -y ${need[*]})" >&2
    exit 1
fi
echo "install_system_deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
