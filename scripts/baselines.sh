#!/usr/bin/env bash
# Learned baselines on bikenyc1 and taxinyc1 (channel 0, seed 0) under one short CPU budget each:
# the runs behind the baseline table in docs/results/README.md. Finished runs are skipped.
#   MINUTES=6 EPOCHS=30 scripts/baselines.sh [model ...]
set -euo pipefail
MINUTES=${MINUTES:-6}
EPOCHS=${EPOCHS:-30}
OUT=${OUT:-${STVFM_RUNS:-runs}/baselines}
MODELS=("$@")
if [ ${#MODELS[@]} -eq 0 ]; then
  MODELS=(itransformer patchtst simvp tau stresnet unist predrnn stnorm mcstl stgsp acfm mim mau stllm)
fi
for model in "${MODELS[@]}"; do
  for dataset in bikenyc1 taxinyc1; do
    out="$OUT/$dataset-ch0/$model"
    [ -f "$out/metrics.json" ] && continue
    extra=()
    # offline, ST-LLM's GPT-2 can only start from random weights: its outputs say "(random-init)"
    [ "$model" = stllm ] && extra=(--set weights=random)
    stvfm fit --model "$model" --dataset "$dataset" --channel 0 --seed 0 --max-epochs "$EPOCHS" \
      --max-minutes "$MINUTES" --patience 10 --warmup-epochs 1 --accelerator cpu --out "$out" "${extra[@]}" \
      || echo "FAILED: $model on $dataset" >&2
  done
done
