#!/bin/bash
# The two-tower table of the README, over seeds: code search on the standard library's
# (docstring, code) pairs. Pretrains configs/siglip_code.py and configs/clip_code.py from
# scratch, BERT (configs/bert_tiny.py) on the stdlib text, SigLIP with its text tower started
# from the BERT run of the same seed, SigLIP with a sentencepiece vocabulary of 4,096 instead
# of bytes (lengths in tokens: 32 and 96, which hold more of each docstring and function than
# 64 and 160 bytes), and with a learning rate of 1e-3 instead of 3e-4; once per seed
# (ssl_jax.sweep), each seed ranked on the 336 held-out pairs by --protocol retrieval, whose
# baselines (TF-IDF, the towers at random init) come with the first study. Each study is
# RUNS_DIR/NAME; benchmarks/study_table.py two_tower RUNS_DIR prints the table. Finished runs
# and evaluations are reused, so an interrupted study resumes.
#   usage: SEEDS=0,1,2 bash benchmarks/two_tower_study.sh RUNS_DIR
set -euo pipefail
RUNS=${1:?usage: bash benchmarks/two_tower_study.sh RUNS_DIR}
SEEDS=${SEEDS:-0,1,2}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$RUNS"

study() {  # NAME CONFIG PROTOCOLS [FLAGS...]
  local start; start=$(date +%s)
  "$PY" -m ssl_jax.sweep --config "configs/$2.py" --workdir "$RUNS/$1" --seeds "$SEEDS" \
    ${3:+--protocols "$3"} "${@:4}" >> "$RUNS/$1.log" 2>&1
  echo "{\"study\": \"$1\", \"seconds\": $(( $(date +%s) - start ))}"
}

study siglip siglip_code retrieval
study clip clip_code retrieval --eval_options baselines=false
study bert bert_tiny ""
study siglip_bert siglip_code retrieval --eval_options baselines=false \
  --config.towers.text_init_from="$RUNS/bert/seed_{seed}"
study siglip_sp siglip_code retrieval --eval_options baselines=false \
  --config.data.tokenizer=sentencepiece --config.data.vocab_size=4096 \
  --config.data.text_len=32 --config.data.pair_len=96
study siglip_lr siglip_code retrieval --eval_options baselines=false --config.optim.lr=1e-3
"$PY" benchmarks/study_table.py two_tower "$RUNS"
