#!/usr/bin/env bash
# Install digit_nbdev with the shipped model into .venv and start the dashboard (http://127.0.0.1:8866).
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/system-deps.sh
install_system_deps python3-venv
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q .
exec .venv/bin/digit_app "$@"
