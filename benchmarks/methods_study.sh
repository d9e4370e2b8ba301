#!/bin/bash
# The vision methods study of the README: every image method of ssl_jax pretrained on
# scikit-learn's digits with a ResNet-18 (width 16, CIFAR stem) and a ViT-tiny (width 192,
# 12 blocks, 3 heads, 4x4 patches), all with one step budget, then scored by the linear
# probe, kNN (k=20) and 10-shot (mean +- std over 3 draws); MAE also by fine-tuning, its
# standard protocol. Raw pixels and a random-init encoder of each shape are the baselines.
# One JSON line per pretraining (wall seconds) and per evaluation; benchmarks/methods_table.py
# turns them into the table. Finished runs and evaluations are reused, so an interrupted
# study resumes.
#   usage: bash benchmarks/methods_study.sh RUNS_DIR [STEPS] | tee RUNS_DIR/study.jsonl
#          python benchmarks/methods_table.py RUNS_DIR/study.jsonl
set -euo pipefail
RUNS=${1:?usage: bash benchmarks/methods_study.sh RUNS_DIR [STEPS]}
STEPS=${2:-500}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$RUNS"
METHODS=(simclr byol mocov3 barlow_twins vicreg simsiam dino mae)
# The ViT-tiny preset, replacing the digits configs' ResNet; 4x4 patches keep a 2-core CPU
# run within minutes (2x2 patches cost about 4x more).
VIT=(--config.model.name=vit --config.model.size=tiny --config.model.depth=0
     --config.model.width=0 --config.model.num_heads=0 --config.model.patch_size=4)

pretrain() {  # RUN CONFIG [FLAGS...]
  local start; start=$(date +%s)
  if [ ! -f "$RUNS/$1.done" ]; then
    "$PY" -m ssl_jax.main --config "configs/$2.py" --workdir "$RUNS/$1" \
      --config.total_steps="$STEPS" --config.eval_every="$STEPS" \
      --config.checkpoint_every="$STEPS" "${@:3}" > "$RUNS/$1.train.log" 2>&1
    echo $(( $(date +%s) - start )) > "$RUNS/$1.done"
  fi
  echo "{\"run\": \"$1\", \"split\": \"pretrain\", \"steps\": $STEPS, \"seconds\": $(cat "$RUNS/$1.done")}"
}

evaluate() {  # RUN PROTOCOL [FLAGS...]: a failure is reported as a line, and the study goes on
  local out
  if [ ! -s "$RUNS/$1.$2.json" ]; then
    if out=$("$PY" -m ssl_jax.evaluate --workdir "$RUNS/$1" --protocol "$2" "${@:3}" \
             2> "$RUNS/$1.$2.log"); then
      echo "$out" | tail -n 1 | sed "s|^{|{\"run\": \"$1\", |" > "$RUNS/$1.$2.json"
    else
      echo "{\"run\": \"$1\", \"split\": \"$2\", \"error\": \"see $RUNS/$1.$2.log\"}"
      return
    fi
  fi
  cat "$RUNS/$1.$2.json"
}

for encoder in resnet18 vit_tiny; do
  flags=(); [ $encoder = vit_tiny ] && flags=("${VIT[@]}")
  baselines=true  # raw pixels and random init: once per encoder, with the first method
  for method in "${METHODS[@]}"; do
    if [ $method = mae ] && [ $encoder = resnet18 ]; then continue; fi  # masking needs patches
    if [ $method = mae ]; then flags+=(--config.model.pool=cls); fi
    run=${method}_$encoder
    pretrain $run ${method}_digits "${flags[@]}"
    for protocol in linear knn fewshot; do evaluate $run $protocol --baselines=$baselines; done
    if [ $method = mae ]; then evaluate $run finetune; fi  # with its from-scratch baseline
    baselines=false
  done
done
