#!/usr/bin/env bash
# Creates .venv (if missing) and installs the pinned environment from requirements.lock
# (exact versions, hash-checked; regenerate it with launch/lock.sh), then this checkout,
# editable, wherever it is. Idempotent: a second run only checks that all is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.lock
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
