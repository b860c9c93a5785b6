"""scripts/relay.sh with a stand-in CLI: what each queue entry runs, where, and that a sitting stopped by
its time cap is resumed until the run finishes, then recorded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

RELAY = Path(__file__).resolve().parents[2] / "scripts" / "relay.sh"

# Logs its arguments; a run's first sitting ends at its time cap when the folder's name says "capped".
STAND_IN = """#!/usr/bin/env bash
echo "$*" >> "$CALLS"
case "$1" in fit|pretrain)
  out=""; for arg in "$@"; do [ "$previous" = --out ] && out=$arg; previous=$arg; done
  mkdir -p "$out"
  if [[ $out == *capped* && ! -e $out/metrics.json ]]; then reason="time cap"; else reason="early stop"; fi
  echo "{\\"stop_reason\\": \\"$reason\\"}" > "$out/metrics.json";;
esac
"""


def run_relay(tmp_path: Path, queue: str) -> list[str]:
    cli = tmp_path / "bin"
    cli.mkdir()
    (cli / "stvfm").write_text(STAND_IN)
    (cli / "stvfm").chmod(0o755)
    (cli / "python").symlink_to(sys.executable)
    calls = tmp_path / "calls.txt"
    env = {**os.environ, "QUEUE": queue, "STVFM": str(cli / "stvfm"), "STVFM_RUNS": str(tmp_path / "runs"),
           "STVFM_LEDGER": str(tmp_path / "ledger"), "SITTING": "30", "CALLS": str(calls)}
    subprocess.run(["bash", str(RELAY)], env=env, check=True, capture_output=True, text=True, timeout=60)
    return calls.read_text().splitlines()


def test_each_entry_form_runs_its_command_in_its_own_folder(tmp_path):
    calls = run_relay(tmp_path, "tau:bikenyc1-60d:1 stvfm/variant=simple:bikenyc1-60d:0 stvfm:bikenyc1-60d:0:30 "
                                "unist+pre:bikenyc1-60d:0")
    runs = tmp_path / "runs" / "relay"
    fits = [call for call in calls if call.startswith("fit")]
    assert fits[0] == (f"fit --model tau --dataset bikenyc1-60d --channel 0 --seed 1 --max-minutes 30 "
                       f"--out {runs}/bikenyc1-60d/tau-seed1")
    assert fits[1].endswith(f"--set variant=simple --out {runs}/bikenyc1-60d/stvfm-variant-simple-seed0")
    # a longer schedule is another run: its own folder, the recipe's epochs replaced
    assert fits[2].endswith(f"--max-epochs 30 --out {runs}/bikenyc1-60d/stvfm-ep30-seed0")
    pretrain = f"{runs}/pretrain/unist-bikenyc1-60d+taxinyc1-seed0"
    assert f"pretrain --model unist --datasets bikenyc1-60d,taxinyc1 --channel 0 --seed 0 --max-minutes 30 --out {pretrain}" in calls
    assert fits[3].endswith(f"--init-from {pretrain}/checkpoints/best.ckpt --out {runs}/bikenyc1-60d/unist-pre-seed0")
    recorded = [call for call in calls if call.startswith("ledger add")]
    assert len(recorded) == 4 and all(call.endswith(f"--ledger {tmp_path / 'ledger'}") for call in recorded)


def test_a_run_stopped_by_its_time_cap_is_resumed_in_the_same_folder_then_recorded(tmp_path):
    calls = run_relay(tmp_path, "capped:bikenyc1-60d:0")
    folder = f"{tmp_path}/runs/relay/bikenyc1-60d/capped-seed0"
    assert [call.split("--out ")[-1] for call in calls if call.startswith("fit")] == [folder, folder]
    assert calls[-1] == f"ledger add {folder} --ledger {tmp_path / 'ledger'}"


def test_a_file_dataset_names_its_folder_by_the_file_not_its_path(tmp_path):
    calls = run_relay(tmp_path, f"stid:{tmp_path}/cities/my_city.npz:0")
    fit = next(call for call in calls if call.startswith("fit"))
    assert f"--dataset {tmp_path}/cities/my_city.npz " in fit and fit.endswith(f"--out {tmp_path}/runs/relay/my_city/stid-seed0")
