#!/usr/bin/env bash
# Runs ssl_jax on every worker of a Cloud TPU pod slice: copy the repo, install, train.
#   launch/tpu_pod.sh TPU_NAME ZONE -- --config configs/NAME.py --workdir gs://BUCKET/run [--config.F=V ...]
# The workdir (and data.data_dir) must be somewhere every worker sees: a gs:// URL (the
# workers' service account needs write access to the bucket) or a shared mounted path.
# Optional environment: PROJECT (gcloud project), JAX_TPU_SPEC (pip spec of jax for TPU).
# Every worker runs the same command; jax.distributed.initialize() finds the pod by itself
# (SSL_JAX_DISTRIBUTED=1). Preempted workers exit 75 after a checkpoint: rerun to resume.
set -euo pipefail
if [ $# -lt 3 ] || [ "$3" != "--" ]; then
  echo "usage: $0 TPU_NAME ZONE -- ARGS_FOR_ssl_jax.main..." >&2
  exit 2
fi
TPU=$1 ZONE=$2
shift 3
ARGS=$(printf '%q ' "$@")
GC=(gcloud compute tpus tpu-vm)
EXTRA=(--zone "$ZONE")
[ -n "${PROJECT:-}" ] && EXTRA+=(--project "$PROJECT")
JAX_TPU_SPEC=${JAX_TPU_SPEC:-"jax[tpu]>=0.10,<0.11"}

cd "$(dirname "$0")/.."
tar czf /tmp/ssl_jax_src.tgz --exclude=.venv --exclude=runs --exclude=.git .
"${GC[@]}" scp /tmp/ssl_jax_src.tgz "$TPU":/tmp/ssl_jax_src.tgz --worker=all "${EXTRA[@]}"
"${GC[@]}" ssh "$TPU" --worker=all "${EXTRA[@]}" --command "
  set -e
  mkdir -p ~/ssl_jax && tar xzf /tmp/ssl_jax_src.tgz -C ~/ssl_jax && cd ~/ssl_jax
  bash launch/setup.sh
  .venv/bin/pip install -q '$JAX_TPU_SPEC'
  SSL_JAX_DISTRIBUTED=1 .venv/bin/python -m ssl_jax.main $ARGS"
