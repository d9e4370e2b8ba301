#!/usr/bin/env bash
# Starts N processes of COMMAND on this machine, joined by jax.distributed through 127.0.0.1.
#   launch/local.sh N -- COMMAND [ARGS...]
# Each process gets --coordinator_address=127.0.0.1:PORT --num_processes=N --process_id=i
# appended. Set XLA_FLAGS=--xla_force_host_platform_device_count=K for K CPU devices each.
# SIGTERM/SIGINT are forwarded to every process; the exit code is the first non-zero one.
set -uo pipefail
if [ $# -lt 3 ] || [ "$2" != "--" ]; then
  echo "usage: $0 N -- COMMAND [ARGS...]" >&2
  exit 2
fi
N=$1
shift 2
PORT=${SSL_JAX_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
pids=()
for ((i = 0; i < N; i++)); do
  "$@" --coordinator_address="127.0.0.1:$PORT" --num_processes="$N" --process_id="$i" &
  pids+=($!)
done
trap 'kill -TERM "${pids[@]}" 2>/dev/null' TERM INT
rc=0
for pid in "${pids[@]}"; do
  while true; do
    wait "$pid"
    code=$?
    # wait returns >128 when a trapped signal interrupts it; keep waiting for the child.
    if kill -0 "$pid" 2>/dev/null; then continue; fi
    break
  done
  if [ "$code" -ne 0 ] && [ "$rc" -eq 0 ]; then rc=$code; fi
done
exit $rc
