"""scripts/relay.sh with a stand-in CLI: what each queue entry runs, where, and that a sitting stopped by
its time cap is resumed until the run finishes, then recorded."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

RELAY = Path(__file__).resolve().parents[2] / "scripts" / "relay.sh"

# Logs its arguments; a run's first sitting ends at its time cap when the folder's name says "capped".
STAND_IN = """#!/usr/bin/env bash
echo "$*" >> "$CALLS"
case "$1" in fit|pretrain)
  out=""; for arg in "$@"; do [ "$previous" = --out ] && out=$arg; previous=$arg; done
  mkdir -p "$out"
  if [[ $out == *held* ]]; then while [ ! -e "$RELEASE" ]; do sleep 0.05; done; fi
  if [[ $out == *capped* && ! -e $out/metrics.json ]]; then reason="time cap"; else reason="early stop"; fi
  echo "{\\"stop_reason\\": \\"$reason\\"}" > "$out/metrics.json";;
esac
"""


def relay_env(tmp_path: Path, queue: str) -> dict[str, str]:
    cli = tmp_path / "bin"
    cli.mkdir(exist_ok=True)
    (cli / "stvfm").write_text(STAND_IN)
    (cli / "stvfm").chmod(0o755)
    if not (cli / "python").exists():
        (cli / "python").symlink_to(sys.executable)
    return {**os.environ, "QUEUE": queue, "STVFM": str(cli / "stvfm"), "STVFM_RUNS": str(tmp_path / "runs"),
            "STVFM_LEDGER": str(tmp_path / "ledger"), "SITTING": "30", "CALLS": str(tmp_path / "calls.txt"),
            "RELEASE": str(tmp_path / "release")}


def run_relay(tmp_path: Path, queue: str) -> list[str]:
    subprocess.run(["bash", str(RELAY)], env=relay_env(tmp_path, queue), check=True, capture_output=True, text=True,
                   timeout=60)
    return (tmp_path / "calls.txt").read_text().splitlines()


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


def test_two_relays_on_one_queue_share_it_and_never_run_one_entry_twice(tmp_path):
    env = relay_env(tmp_path, "held:bikenyc1-60d:0 stid:bikenyc1-60d:0")
    first = subprocess.Popen(["bash", str(RELAY)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    calls = tmp_path / "calls.txt"
    try:
        deadline = time.monotonic() + 30
        while not (calls.exists() and "held-seed0" in calls.read_text()):  # the first relay is inside the long run
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.05)
        second = subprocess.run(["bash", str(RELAY)], env=env, capture_output=True, text=True, timeout=30, check=True)
        assert "held-seed0 is held by another relay; next entry" in second.stdout
    finally:
        (tmp_path / "release").touch()
        first.communicate(timeout=60)
    assert first.returncode == 0
    fits = [call.split("--out ")[-1] for call in calls.read_text().splitlines() if call.startswith("fit")]
    runs = f"{tmp_path}/runs/relay/bikenyc1-60d"
    assert sorted(fits) == [f"{runs}/held-seed0", f"{runs}/stid-seed0"]  # each run fitted once, by one relay
    recorded = [call for call in calls.read_text().splitlines() if call.startswith("ledger add")]
    assert f"ledger add {runs}/held-seed0 --ledger {tmp_path / 'ledger'}" in recorded


def test_a_failed_fit_reports_its_exit_status_and_the_relay_goes_on(tmp_path):
    env = relay_env(tmp_path, "broken:bikenyc1-60d:0 stid:bikenyc1-60d:0")
    (tmp_path / "bin" / "stvfm").write_text(STAND_IN.replace('case "$1" in', '[[ "$*" == *broken* ]] && exit 3\ncase "$1" in'))
    result = subprocess.run(["bash", str(RELAY)], env=env, capture_output=True, text=True, timeout=60, check=True)
    assert "broken on bikenyc1-60d failed (exit 3); next entry" in result.stdout
    assert "stid on bikenyc1-60d, seed 0: finished" in result.stdout
