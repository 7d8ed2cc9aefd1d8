#!/usr/bin/env bash
# Install everything the project needs (system packages, the browser for the browser tests, the package
# with its dev extras in .venv) and run every test: notebooks/package sync, nbdev_test, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/system-deps.sh
install_system_deps python3-venv python3-dev npm chromium \
  fonts-humor-sans fonts-comic-neue fonts-dkg-handwriting fonts-breip fonts-bwht fonts-dancingscript fonts-rufscript fonts-kaushanscript fonts-kristi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"
# TensorFlow's C++ info and warning lines (oneDNN, CPU features) are noise in test output; its errors still show.
# (digit_nbdev's own imports of TensorFlow set this too: `digit_nbdev.core.import_tensorflow`.)
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
# TensorFlow's oneDNN kernels print an "E0000 ... oneDNN supports DT_BOOL only on platforms with AVX-512" line that
# is no error (it falls back to Eigen); the tests do not need oneDNN's speed.
export TF_ENABLE_ONEDNN_OPTS="${TF_ENABLE_ONEDNN_OPTS:-0}"
.venv/bin/python tools/check_sync.py
.venv/bin/python tools/readme.py --check
.venv/bin/nbdev_test --n_workers 2
.venv/bin/python -m pytest tests "$@"
