#!/usr/bin/env bash
# A relay for runs longer than one session: trains a queue of runs, each at its recipe and so at the
# recipe's precision (the baselines' published fp32; ST-VFM's `auto`: bf16 where the host computes it
# natively, else fp32), in sittings of SITTING minutes,
# resuming whatever it finds. A sitting ends at its time cap, a kill or the end of a session; the
# next call resumes the run from its last epoch end (its folder logs every sitting in sittings.json).
# A run that ends by early stopping or its recipe's last epoch (a classical model: its closed form) is copied into the ledger
# (STVFM_LEDGER, default docs/results/ledger): commit that record at once.
#   QUEUE="stvfm:bikenyc1-60d:0 unist:bikenyc1-60d:0" SITTING=120 scripts/relay.sh
# Entries are MODEL:DATASET:SEED[:EPOCHS] (channel 0; EPOCHS replaces the recipe's max_epochs, a longer schedule
# in its own folder, e.g. stvfm:bikenyc1-60d:0:30); MODEL/KEY=VALUE,... sets model options (ST-VFM's ablations and
# random-init rows: stvfm/variant=simple, stvfm/weights=random); MODEL+pre (e.g. unist+pre) first pre-trains MODEL on DATASET
# and PRETRAIN_WITH (default taxinyc1) at once, in sittings too, then fine-tunes from it on DATASET.
# Several relays (one per core, THREADS=1) may share one QUEUE: each entry is held by the relay that
# took it (a lock beside its folder), and the others pass on to the next entry. Where they stand: `stvfm progress`.
# Environment: STVFM_RUNS (run folders, default runs/; keep it outside the work tree), STVFM (the CLI),
# THREADS (torch threads, default all cores).
set -uo pipefail
queue=${QUEUE:-"stvfm:bikenyc1-60d:0 unist:bikenyc1-60d:0 simvp:bikenyc1-60d:0 tau:bikenyc1-60d:0 stid:bikenyc1-60d:0 acfm:bikenyc1-60d:0 mcstl:bikenyc1-60d:0 predrnn:bikenyc1-60d:0 mim:bikenyc1-60d:0"}
sitting=${SITTING:-120}
runs=${STVFM_RUNS:-runs}
ledger=${STVFM_LEDGER:-docs/results/ledger}
stvfm=${STVFM:-stvfm}
python=$(dirname "$(command -v "$stvfm")")/python
[ -n "${THREADS:-}" ] && export OMP_NUM_THREADS=$THREADS

finished() {  # the run's metrics.json says it ended by early stopping, its last epoch, or in closed form
  "$python" - "$1" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
try:
    reason = json.loads((out / "metrics.json").read_text()).get("stop_reason")
except (OSError, ValueError):
    sys.exit(1)
# a classical model's metrics have no stop reason: its closed-form fit is complete
sys.exit(0 if not (out / ".in-progress").exists() and reason != "time cap" else 1)
PY
}

run_entry() {  # one queue entry: pre-training (MODEL+pre), then the fit, in sittings, then its record
  local model=$1 dataset=$2 seed=$3 out=$4 pre=$5 extra=("${@:6}")
  if ! flock -n 9; then
    echo "== $(date -u +%H:%M:%S) $out is held by another relay; next entry"
    return
  fi
  if [ -n "$pre" ]; then
    local with=${PRETRAIN_WITH:-taxinyc1}
    while ! finished "$pre"; do
      echo "== $(date -u +%H:%M:%S) pre-training $model on $dataset and $with, seed $seed: a sitting of up to $sitting min ($pre)"
      "$stvfm" pretrain --model "$model" --datasets "$dataset,$with" --channel 0 --seed "$seed" \
        --max-minutes "$sitting" --out "$pre" || { echo "== pre-training $model failed (exit $?); next entry"; return; }
    done
    extra+=(--init-from "$pre/checkpoints/best.ckpt")
  fi
  while ! finished "$out"; do
    echo "== $(date -u +%H:%M:%S) $model on $dataset, seed $seed: a sitting of up to $sitting min ($out)"
    STVFM_LEDGER= "$stvfm" fit --model "$model" --dataset "$dataset" --channel 0 --seed "$seed" \
      --max-minutes "$sitting" "${extra[@]}" --out "$out" || { echo "== $model on $dataset failed (exit $?); next entry"; return; }
  done
  "$stvfm" ledger add "$out" --ledger "$ledger" >/dev/null && echo "== $(date -u +%H:%M:%S) $model on $dataset, seed $seed: finished; record in $ledger"
}

for entry in $queue; do
  IFS=: read -r model dataset seed epochs <<<"$entry"
  extra=()
  pre=""
  place=$(basename "${dataset%.*}")  # a registered name as it is; a file dataset by its file's name, not its path
  if [[ $model == */* ]]; then  # model options: one --set each, and in the folder's name
    IFS=, read -ra options <<<"${model#*/}"
    for option in "${options[@]}"; do extra+=(--set "$option"); done
    model=${model%%/*}
    named=${entry%%:*}
    out="$runs/relay/$place/$model-${named#*/}-seed$seed"
    out=${out//[=,]/-}
  else
    out="$runs/relay/$place/$model-seed$seed"
  fi
  [ "$model" = stllm ] && extra+=(--set weights=random)  # GPT-2 weights need the hub; every record says so
  if [[ $model == *+pre ]]; then
    model=${model%+pre}
    pre="$runs/relay/pretrain/$model-$place+${PRETRAIN_WITH:-taxinyc1}-seed$seed"
    out="$runs/relay/$place/$model-pre-seed$seed"
  fi
  if [ -n "$epochs" ]; then  # another schedule, so another run: its own folder
    extra+=(--max-epochs "$epochs")
    out="${out%-seed$seed}-ep$epochs-seed$seed"
  fi
  mkdir -p "$(dirname "$out")"
  run_entry "$model" "$dataset" "$seed" "$out" "$pre" "${extra[@]}" 9>"$out.relay-lock"
done
