#!/bin/bash
# The transfer study of the README: pretrains GPT and BERT on the stdlib, SimCLR and BYOL on
# digits, then scores each encoder (and, in the same JSON line, a random-init encoder of
# the same shape and raw inputs) on the downstream tasks. One JSON line per pretraining
# (wall seconds) and per evaluation. About 45 minutes on a 2-core CPU; finished runs are
# reused, so an interrupted study resumes. Text fine-tuning runs 300 steps of 32 snippets
# (4 epochs of the 2,400 training snippets); the evaluate defaults suit the small images.
#   usage: bash benchmarks/transfer_study.sh [RUNS_DIR] | tee study.jsonl
set -euo pipefail
RUNS=${1:-runs/transfer}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$RUNS"

pretrain() {  # NAME CONFIG
  local start; start=$(date +%s)
  "$PY" -m ssl_jax.main --config "configs/$2.py" --workdir "$RUNS/$1" > "$RUNS/$1.train.log" 2>&1
  echo "{\"run\": \"$1\", \"split\": \"pretrain\", \"seconds\": $(( $(date +%s) - start ))}"
}

evaluate() {  # NAME PROTOCOL [FLAGS...]
  "$PY" -m ssl_jax.evaluate --workdir "$RUNS/$1" --protocol "$2" "${@:3}" 2> "$RUNS/$1.$2.log" \
    | tail -n 1 | sed "s/^{/{\"run\": \"$1\", /"
}

pretrain gpt gpt_tiny
evaluate gpt linear; evaluate gpt finetune --batch_size 32 --finetune_steps 300
pretrain bert bert_tiny
evaluate bert linear; evaluate bert finetune --batch_size 32 --finetune_steps 300
for method in byol simclr; do
  pretrain $method ${method}_digits
  for p in linear knn fewshot; do evaluate $method $p; done
done
