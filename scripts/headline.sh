#!/usr/bin/env bash
# ST-VFM full at its recipe, one time-capped run per dataset and seed with every core, taxinyc1
# first, then bikenyc1 (channel 0); each finished run leaves a ledger record. Re-running resumes
# an unfinished run from its last checkpoint (same folder, same settings) and skips finished ones.
#   SEEDS="0 1 2" EPOCHS=18 MINUTES=150 scripts/headline.sh
# Environment: STVFM_RUNS (run folders, default runs/), STVFM_LEDGER (records, default
# docs/results/ledger), STVFM (the CLI). The epoch count assumes native bf16 (AVX512-BF16, AMX or
# a CUDA GPU: ~7.5 minutes per taxinyc1 epoch on 2 AVX512-BF16 cores); where the recipe's
# precision resolves to fp32 the cap would end training after a few epochs, so the script
# stops there unless FORCE=1.
set -uo pipefail
seeds=${SEEDS:-0} epochs=${EPOCHS:-18} minutes=${MINUTES:-150}
runs=${STVFM_RUNS:-runs}
export STVFM_LEDGER=${STVFM_LEDGER:-docs/results/ledger}
stvfm=${STVFM:-stvfm}
python=$(dirname "$(command -v "$stvfm")")/python
precision=$("$python" -c "from stvfm.training.config import native_precision; print(native_precision())")
if [ "$precision" != bf16 ] && [ "${FORCE:-0}" != 1 ]; then
  echo "headline.sh: no native bf16 on this machine (the recipe would run fp32, far slower than its" \
       "$epochs epochs in $minutes minutes assume); FORCE=1 runs it anyway" >&2
  exit 2
fi
for seed in $seeds; do
  for dataset in taxinyc1 bikenyc1; do
    out="$runs/headline/stvfm-$dataset-${epochs}ep-seed$seed"  # more epochs of a cosine schedule: another run
    [ -f "$out/metrics.json" ] && [ ! -f "$out/.in-progress" ] && continue  # finished
    echo "== $(date -u +%H:%M:%S) ST-VFM full on $dataset, seed $seed, $epochs epochs, cap $minutes min ($precision)"
    "$stvfm" fit --model stvfm --dataset "$dataset" --channel 0 --seed "$seed" --max-epochs "$epochs" \
      --max-minutes "$minutes" --out "$out" || echo "== failed (exit $?)"
  done
done
