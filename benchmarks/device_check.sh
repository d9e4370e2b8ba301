#!/usr/bin/env bash
# One GPU check, from the repository root:  bash benchmarks/device_check.sh [--smoke]
# Prints the GPU, a bf16 matmul ceiling, gpt2_small tokens/s and MFU, SimCLR ResNet-18
# images/s, and a markdown block to paste into benchmarks/RESULTS.md (with date and GPU).
# Uses python3's jax/flax/optax/numpy only; ssl_jax is imported from this checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm \
    --format=csv,noheader || true
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# Hard stop well inside 8 minutes; the script itself skips optional parts past --budget_s.
exec timeout 450 "${PYTHON:-python3}" benchmarks/device_check.py "$@"
