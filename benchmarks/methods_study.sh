#!/bin/bash
# The vision methods table of the README, over seeds: every image method of ssl_jax pretrained
# on scikit-learn's digits with a ResNet-18 (width 16, CIFAR stem) and a ViT-tiny (width 192,
# 12 blocks, 3 heads, 4x4 patches), all with one step budget, once per seed (ssl_jax.sweep),
# then each seed scored by the linear probe, kNN (k=20) and 10-shot; MAE also by fine-tuning,
# its standard protocol. Raw pixels and a random-init encoder of each shape (drawn with each
# seed) are the baselines, evaluated with the first method of each encoder. Each study is
# RUNS_DIR/METHOD_ENCODER; benchmarks/study_table.py methods RUNS_DIR prints the table.
# Finished runs and evaluations are reused, so an interrupted study resumes.
# ENCODERS (default "resnet18 vit_tiny") runs a part, e.g. the ResNet half first.
#   usage: SEEDS=0,1,2 ENCODERS=resnet18 bash benchmarks/methods_study.sh RUNS_DIR [STEPS]
set -euo pipefail
RUNS=${1:?usage: bash benchmarks/methods_study.sh RUNS_DIR [STEPS]}
STEPS=${2:-500}
SEEDS=${SEEDS:-0,1,2}
ENCODERS=${ENCODERS:-resnet18 vit_tiny}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$RUNS"
METHODS=(simclr byol mocov3 barlow_twins vicreg simsiam dino mae)
# The ViT-tiny preset, replacing the digits configs' ResNet; 4x4 patches keep a 2-core CPU
# run within minutes (2x2 patches cost about 4x more).
VIT=(--config.model.name=vit --config.model.size=tiny --config.model.depth=0
     --config.model.width=0 --config.model.num_heads=0 --config.model.patch_size=4)

study() {  # RUN CONFIG PROTOCOLS EVAL_OPTIONS [FLAGS...]
  local start; start=$(date +%s)
  "$PY" -m ssl_jax.sweep --config "configs/$2.py" --workdir "$RUNS/$1" --seeds "$SEEDS" \
    --protocols "$3" --eval_options "$4" --config.total_steps="$STEPS" \
    --config.eval_every="$STEPS" --config.checkpoint_every="$STEPS" "${@:5}" \
    >> "$RUNS/$1.log" 2>&1
  echo "{\"study\": \"$1\", \"steps\": $STEPS, \"seconds\": $(( $(date +%s) - start ))}"
}

for encoder in $ENCODERS; do
  case $encoder in resnet18|vit_tiny) ;;
    *) echo "ENCODERS: unknown encoder '$encoder' (resnet18, vit_tiny)" >&2; exit 2;; esac
done
for encoder in $ENCODERS; do
  flags=(); [ $encoder = vit_tiny ] && flags=("${VIT[@]}")
  baselines=true  # raw pixels and random init: with the first method of each encoder
  for method in "${METHODS[@]}"; do
    if [ $method = mae ] && [ $encoder = resnet18 ]; then continue; fi  # masking needs patches
    protocols=linear,knn,fewshot
    if [ $method = mae ]; then
      flags+=(--config.model.pool=cls)
      protocols+=,finetune  # its baselines (from scratch, raw pixels) come with it
      baselines=true
    fi
    study ${method}_$encoder ${method}_digits $protocols baselines=$baselines "${flags[@]}"
    baselines=false
  done
done
"$PY" benchmarks/study_table.py methods "$RUNS"
