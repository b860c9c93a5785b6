#!/usr/bin/env bash
# Train models one after another at their recipes, each until early stopping or a time cap,
# leaving one ledger record per finished run (docs/results/ledger by default).
#   scripts/ledger-queue.sh DATASET CAP_MINUTES SEED MODEL [MODEL...]
# Environment: STVFM_RUNS (run folders, default runs/), STVFM_LEDGER (records), STVFM (the CLI).
set -uo pipefail
dataset=$1 cap=$2 seed=$3
shift 3
runs=${STVFM_RUNS:-runs}
export STVFM_LEDGER=${STVFM_LEDGER:-docs/results/ledger}
stvfm=${STVFM:-stvfm}
for model in "$@"; do
  extra=()
  [ "$model" = stllm ] && extra=(--set weights=random)  # GPT-2 weights need the hub; say so in every record
  echo "== $(date -u +%H:%M:%S) $model on $dataset, seed $seed, cap $cap min"
  "$stvfm" fit --model "$model" --dataset "$dataset" --channel 0 --seed "$seed" --max-minutes "$cap" \
    "${extra[@]}" --out "$runs/ledger/$dataset/$model-seed$seed" || echo "== $model failed (exit $?)"
done
