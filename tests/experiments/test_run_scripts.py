"""The shell queues behind the committed results: what each hands to ``stvfm fit``, with a stand-in CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def fake_cli(tmp_path: Path) -> Path:
    """A `stvfm` that logs its arguments, with the real Python beside it (as in a venv's bin/): a wrapper,
    not a symlink, since a symlinked venv python outside its venv loses the venv's packages."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_dir / "python").chmod(0o755)
    cli = bin_dir / "stvfm"
    cli.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "calls.txt"}\n')
    cli.chmod(0o755)
    return cli


def run_script(name: str, tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = os.environ | {"STVFM": str(fake_cli(tmp_path)), "STVFM_RUNS": str(tmp_path / "runs"),
                                "STVFM_LEDGER": str(tmp_path / "ledger"), **env}
    return subprocess.run(["bash", str(REPO / "scripts" / name), *args], env=environment, capture_output=True,
                          text=True, timeout=120)


def test_headline_fits_each_dataset_and_seed_and_skips_finished_runs(tmp_path):
    finished = tmp_path / "runs" / "headline" / "stvfm-bikenyc1-3ep-seed1"
    finished.mkdir(parents=True)
    (finished / "metrics.json").write_text("{}")
    result = run_script("headline.sh", tmp_path, SEEDS="0 1", EPOCHS="3", MINUTES="5", FORCE="1")
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    assert [call.split("--dataset ")[1].split()[0] + call.split("--seed ")[1].split()[0] for call in calls] == [
        "taxinyc10", "bikenyc10", "taxinyc11"]  # bikenyc1 seed 1 finished: skipped
    assert all("--model stvfm" in call and "--max-epochs 3 --max-minutes 5" in call for call in calls)


def test_headline_refuses_a_machine_without_native_bf16_unless_forced(tmp_path):
    from stvfm.training.config import native_precision

    result = run_script("headline.sh", tmp_path)
    if native_precision() == "bf16":
        assert result.returncode == 0
    else:
        assert result.returncode == 2 and "no native bf16" in result.stderr
        assert not (tmp_path / "calls.txt").exists()


def test_ledger_queue_trains_each_model_at_its_recipe_under_the_cap(tmp_path):
    result = run_script("ledger-queue.sh", tmp_path, "bikenyc1", "30", "2", "stid", "stllm")
    assert result.returncode == 0, result.stderr
    stid, stllm = (tmp_path / "calls.txt").read_text().splitlines()
    assert "--model stid --dataset bikenyc1 --channel 0 --seed 2 --max-minutes 30" in stid
    assert "--set weights=random" in stllm  # offline: GPT-2 from random weights, and every record says so
