#!/bin/bash
# The transfer study of the README: pretrains GPT and BERT on the stdlib, SimCLR and BYOL on
# digits, then scores each encoder (and, in the same JSON line, a random-init encoder of
# the same shape and raw inputs) on the downstream tasks: the text encoders on the stdlib
# packages task and on another package tree they never saw (scikit-learn's source, as
# installed in the venv). One JSON line per pretraining (wall seconds) and per evaluation
# (with "dataset"). About 75 minutes on a 2-core CPU; finished runs are reused, so an
# interrupted study resumes. Text fine-tuning runs 300 steps of 32 snippets (4 epochs of
# the 2,400 training snippets); the evaluate defaults suit the small images.
#   usage: bash benchmarks/transfer_study.sh [RUNS_DIR [text|images|all]] | tee study.jsonl
set -euo pipefail
RUNS=${1:-runs/transfer}
PART=${2:-all}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$RUNS"

pretrain() {  # NAME CONFIG [FLAGS...]
  local start; start=$(date +%s)
  "$PY" -m ssl_jax.main --config "configs/$2.py" --workdir "$RUNS/$1" "${@:3}" \
    > "$RUNS/$1.train.log" 2>&1
  echo "{\"run\": \"$1\", \"split\": \"pretrain\", \"seconds\": $(( $(date +%s) - start ))}"
}

evaluate() {  # NAME PROTOCOL [--dataset SPEC] [FLAGS...]
  local dataset=default; [ "${3:-}" = --dataset ] && dataset=$4
  local log; log="$RUNS/$1.$2.$(echo "$dataset" | tr -c 'A-Za-z0-9\n' _).log"
  "$PY" -m ssl_jax.evaluate --workdir "$RUNS/$1" --protocol "$2" "${@:3}" 2> "$log" \
    | tail -n 1 | sed "s|^{|{\"run\": \"$1\", \"dataset\": \"$dataset\", |"
}

# Another package tree than the pretraining corpus: scikit-learn's subpackages.
SKLEARN=$("$PY" -c 'import os, sklearn; print(os.path.dirname(sklearn.__file__))')
FINETUNE=(--batch_size 32 --finetune_steps 300)

text_run() {  # NAME CONFIG [FLAGS...]: pretrain, then probe on the stdlib and on scikit-learn
  pretrain "$@"
  evaluate "$1" linear; evaluate "$1" finetune "${FINETUNE[@]}"
  evaluate "$1" linear --dataset "packages:$SKLEARN"
  evaluate "$1" finetune --dataset "packages:$SKLEARN" "${FINETUNE[@]}"
}

if [ "$PART" != images ]; then
  text_run gpt gpt_tiny
  text_run bert bert_tiny
  # BERT in the layout that exports exactly to MegatronBertForMaskedLM (docs/export.md).
  text_run bert_hf bert_tiny --config.model.position=learned --config.model.mlm_head=transform
fi
if [ "$PART" != text ]; then
  for method in byol simclr; do
    pretrain $method ${method}_digits
    for p in linear knn fewshot; do evaluate $method $p; done
  done
fi
