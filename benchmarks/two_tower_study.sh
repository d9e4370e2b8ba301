#!/bin/bash
# The two-tower table of the README: code search on the standard library's (docstring,
# code) pairs. Pretrains configs/clip_code.py and configs/siglip_code.py from scratch, BERT
# (configs/bert_tiny.py) on the stdlib text, and SigLIP with its text tower started from that
# BERT run; then ranks the 336 held-out pairs with --protocol retrieval, whose baselines are
# TF-IDF and the same towers at random init; and SigLIP with a sentencepiece vocabulary of
# 4,096 instead of bytes (lengths in tokens: 32 and 96, which hold more of each docstring and
# function than 64 and 160 bytes), and with a learning rate of 1e-3 instead of 3e-4. One
# JSON line per pretraining (wall seconds)
# and per evaluation; benchmarks/two_tower_table.py turns them into the table. Finished
# runs and evaluations are reused, so an interrupted study resumes.
#   usage: bash benchmarks/two_tower_study.sh RUNS_DIR | tee RUNS_DIR/study.jsonl
#          python benchmarks/two_tower_table.py RUNS_DIR/study.jsonl
set -euo pipefail
RUNS=${1:?usage: bash benchmarks/two_tower_study.sh RUNS_DIR}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$RUNS"

pretrain() {  # RUN CONFIG [FLAGS...]
  local start; start=$(date +%s)
  if [ ! -f "$RUNS/$1.done" ]; then
    "$PY" -m ssl_jax.main --config "configs/$2.py" --workdir "$RUNS/$1" "${@:3}" \
      > "$RUNS/$1.train.log" 2>&1
    echo $(( $(date +%s) - start )) > "$RUNS/$1.done"
  fi
  echo "{\"run\": \"$1\", \"split\": \"pretrain\", \"seconds\": $(cat "$RUNS/$1.done")}"
}

evaluate() {  # RUN [FLAGS...]: a failure is reported as a line, and the study goes on
  local out
  if [ ! -s "$RUNS/$1.retrieval.json" ]; then
    if out=$("$PY" -m ssl_jax.evaluate --workdir "$RUNS/$1" --protocol retrieval "${@:2}" \
             2> "$RUNS/$1.retrieval.log"); then
      echo "$out" | tail -n 1 | sed "s|^{|{\"run\": \"$1\", |" > "$RUNS/$1.retrieval.json"
    else
      echo "{\"run\": \"$1\", \"split\": \"retrieval\", \"error\": \"see $RUNS/$1.retrieval.log\"}"
      return
    fi
  fi
  cat "$RUNS/$1.retrieval.json"
}

pretrain siglip siglip_code
evaluate siglip --show 3  # with the TF-IDF and random-init baselines
pretrain clip clip_code
evaluate clip --baselines=false
pretrain bert bert_tiny
pretrain siglip_bert siglip_code --config.towers.text_init_from="$RUNS/bert"
evaluate siglip_bert --baselines=false
pretrain siglip_sp siglip_code --config.data.tokenizer=sentencepiece \
  --config.data.vocab_size=4096 --config.data.text_len=32 --config.data.pair_len=96
evaluate siglip_sp --baselines=false
pretrain siglip_lr siglip_code --config.optim.lr=1e-3
evaluate siglip_lr --baselines=false
