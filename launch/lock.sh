#!/usr/bin/env bash
# Regenerates requirements.lock from pyproject.toml: every package pinned to one version with
# its hashes (pip then checks each download), build requirements included, no local paths.
# Versions already in the lock are kept; pass --upgrade, or --upgrade-package NAME, to move.
#   bash launch/lock.sh [--upgrade | --upgrade-package NAME ...]
set -euo pipefail
cd "$(dirname "$0")/.."
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools"
"$tools/bin/pip" install -q --disable-pip-version-check "pip-tools>=7.4,<8"
CUSTOM_COMPILE_COMMAND="bash launch/lock.sh" "$tools/bin/pip-compile" -q --generate-hashes \
  --allow-unsafe --all-build-deps --extra test --strip-extras --no-emit-index-url \
  --no-emit-find-links --no-emit-trusted-host --output-file requirements.lock "$@" pyproject.toml
