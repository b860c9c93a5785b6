"""``scripts/device-suite.sh --quick``: the GPU suite's every stage on the CPU with tiny models and data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from stvfm.experiments.device_suite import smoke_model
from stvfm.models.registry import list_models

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "device-suite.sh"


def test_quick_suite_runs_every_stage_and_leaves_its_results_in_out(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "STVFM_RUNS": str(tmp_path / "runs"), "PYTHON": sys.executable,
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", str(SCRIPT), "--quick"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    smoke = json.loads((out / "smoke.json").read_text())
    assert set(smoke["models"]) == {entry.name for entry in list_models()} and smoke["failed"] == []
    assert all("bf16_loss" in row and "fp32_loss" in row for name, row in smoke["models"].items()
               if next(entry for entry in list_models() if entry.name == name).cls.trainable)
    for name in ("taxinyc1", "bikenyc1"):
        assert json.loads((out / f"{name}-stvfm.json").read_text())["settings"]["precision"] == "bf16"
    with tarfile.open(out / "reports.tar.gz") as reports:
        assert any(member.name.endswith(".md") and "efficiency" in member.name for member in reports.getmembers())
    assert len(list(out.iterdir())) <= 8  # the device tool brings back at most 8 files


def test_a_model_whose_prediction_stays_on_the_wrong_device_fails_the_smoke_test(monkeypatch):
    from stvfm.models.base import Forecaster

    monkeypatch.setattr(Forecaster, "predict", lambda self, batch: batch["y"].to("meta"))
    try:
        smoke_model("stid", "cpu", quick=True)
    except RuntimeError as error:
        assert "expected" in str(error)
    else:
        raise AssertionError("a prediction on another device passed")
