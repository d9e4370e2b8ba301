#!/bin/bash
# The transfer tables of the README, over seeds: pretrains GPT and BERT on the stdlib, SimCLR
# and BYOL on digits, once per seed (ssl_jax.sweep), then scores every seed's encoder (and, in
# the same evaluation, a random-init encoder of the same shape drawn with that seed, and raw
# inputs): the text encoders on the stdlib packages task and on a package tree they never
# saw (scikit-learn's source, as installed in the venv), the image encoders by linear probe,
# kNN and 10-shot. Each study is RUNS_DIR/NAME (sweep.md, sweep.json, evaluations.png);
# benchmarks/study_table.py prints the README tables from them, with intervals. Finished
# runs and evaluations are reused, so an interrupted study resumes. Text fine-tuning runs
# 300 steps of 32 snippets; the evaluate defaults suit the small images.
#   usage: SEEDS=0,1,2 bash benchmarks/transfer_study.sh [RUNS_DIR [text|images|all]]
set -euo pipefail
RUNS=${1:-runs/transfer}
PART=${2:-all}
SEEDS=${SEEDS:-0,1,2}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$RUNS"

study() {  # NAME CONFIG PROTOCOLS [EVAL_OPTIONS]: train every seed, then evaluate each
  local start; start=$(date +%s)
  "$PY" -m ssl_jax.sweep --config "configs/$2.py" --workdir "$RUNS/$1" --seeds "$SEEDS" \
    --protocols "$3" ${4:+--eval_options "$4"} >> "$RUNS/$1.log" 2>&1
  echo "{\"study\": \"$1\", \"protocols\": \"$3\", \"seconds\": $(( $(date +%s) - start ))}"
}

# Another package tree than the pretraining corpus: scikit-learn's subpackages.
SKLEARN=$("$PY" -c 'import os, sklearn; print(os.path.dirname(sklearn.__file__))')

if [ "$PART" != text ]; then
  for method in simclr byol; do study $method ${method}_digits linear,knn,fewshot; done
fi
if [ "$PART" != images ]; then  # the linear probes first: fine-tuning costs most
  for run in gpt:gpt_tiny bert:bert_tiny; do
    study "${run%%:*}" "${run##*:}" "linear,linear@packages:$SKLEARN"
  done
  for dataset in "" "@packages:$SKLEARN"; do
    for run in gpt:gpt_tiny bert:bert_tiny; do
      study "${run%%:*}" "${run##*:}" "finetune$dataset" batch_size=32,finetune_steps=300
    done
  done
fi
"$PY" benchmarks/study_table.py transfer "$RUNS"
