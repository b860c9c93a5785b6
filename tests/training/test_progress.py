"""``stvfm progress``: the standing of run folders between a relay's sittings, from their records alone."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from stvfm.cli.main import main
from stvfm.training.folders import IN_PROGRESS_NAME
from stvfm.training.progress import progress

HEADER = "epoch,step,train/loss_epoch,val/mse_st,val/rmse\n"


def _run_folder(folder, sittings, earlier_rows, current_rows, *, max_epochs=10, metrics=None, claimant=None):
    """A fit's folder as a relay leaves it: settings, sittings, the earlier sittings' log rows beside the
    current sitting's, and its claim or its metrics."""
    (folder / "logs").mkdir(parents=True)
    (folder / "checkpoints").mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump({"model": "tau", "dataset": "bikenyc1-60d", "seed": 1,
                                                        "max_epochs": max_epochs, "patience": 4}))
    (folder / "sittings.json").write_text(json.dumps(sittings))
    for name, rows in (("metrics-earlier-sittings.csv", earlier_rows), ("metrics.csv", current_rows)):
        (folder / "logs" / name).write_text(HEADER + "".join(f"{e},{e * 10},,{mse},{rmse}\n" for e, mse, rmse in rows))
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))
    if claimant is not None:
        (folder / IN_PROGRESS_NAME).write_text(f"started 2026-12-06T10:00:00 by pid {claimant}\n")
    return folder


@pytest.fixture
def sleeper():
    """A live process whose command line names stvfm, as a relay's ``stvfm fit`` does."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "stvfm-fit"])
    cmdline = Path(f"/proc/{process.pid}/cmdline")
    deadline = time.monotonic() + 10
    while b"stvfm-fit" not in cmdline.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.01)  # Popen returns before a vforked child's new command line can be read
    yield process
    process.kill()
    process.wait()


def test_a_live_run_then_the_same_run_killed(tmp_path, sleeper):
    sittings = [{"train_seconds": 300.0, "epochs_reached": 3, "threads": 1},
                {"train_seconds": 200.0, "epochs_reached": 5, "threads": 2}]
    folder = _run_folder(tmp_path / "relay" / "tau-seed1", sittings,
                         earlier_rows=[(0, 0.03, 9.0), (1, 0.02, 8.0), (2, 0.025, 8.5)],
                         current_rows=[(3, 0.021, 8.1), (4, 0.022, 8.2)], claimant=sleeper.pid)
    (run,) = progress(tmp_path)
    assert run.folder == folder and (run.model, run.dataset, run.seed) == ("tau", "bikenyc1-60d", 1)
    assert run.state == f"training (pid {sleeper.pid})"
    # the earlier sittings' rows and this sitting's make one curve; selection is on the scaled MSE
    assert run.epochs_done == 5 and run.best["epoch"] == 1 and run.best["val/rmse"] == 8.0
    assert run.last["epoch"] == 4 and run.epochs_since_best == 3
    assert run.core_hours == pytest.approx((300 + 2 * 200) / 3600)
    # the latest sitting's pace (100 s an epoch) over the 5 epochs the recipe still allows
    assert run.seconds_per_epoch == 100 and run.hours_left_at_most == pytest.approx(500 / 3600)
    sleeper.kill()
    sleeper.wait()
    (run,) = progress(tmp_path)
    assert run.state == "interrupted; resumes after epoch 4"
    # killed after epoch 4's logs but before its checkpoint: the resume redoes epoch 4, so it does not count
    torch.save({"epoch": 3, "state_dict": {}}, folder / "checkpoints" / "last.ckpt")
    (run,) = progress(tmp_path)
    assert run.state == "interrupted; resumes after epoch 3" and run.epochs_done == 4 and run.last["epoch"] == 3


def test_ended_runs_and_the_folders_inside_a_run_are_not_runs(tmp_path):
    _run_folder(tmp_path / "a", [{"train_seconds": 60.0, "epochs_reached": 2, "threads": 1}],
                [], [(0, 0.03, 9.0), (1, 0.02, 8.0)], metrics={"stop_reason": "early stop", "epochs": 2})
    _run_folder(tmp_path / "b", [{"train_seconds": 60.0, "epochs_reached": 1, "threads": 1}],
                [], [(0, 0.03, 9.0)], metrics={"stop_reason": "time cap", "epochs": 1})
    (tmp_path / "a" / "checkpoints" / "config.yaml").write_text("model: not-a-run\n")
    ended, capped = progress(tmp_path)
    assert ended.state == "early stop" and ended.hours_left_at_most == 0
    assert capped.state == "time cap; resumable" and capped.hours_left_at_most == pytest.approx(9 * 60 / 3600)


def test_progress_command_prints_each_run_and_refuses_a_missing_folder(tmp_path, capsys):
    _run_folder(tmp_path / "relay" / "tau-seed1", [{"train_seconds": 60.0, "epochs_reached": 1, "threads": 1}],
                [], [(0, 0.03, 9.0)], claimant=2**22 + 7)  # a pid no process holds
    assert main(["progress", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "relay/tau-seed1" in printed and "tau on bikenyc1-60d, seed 1" in printed
    assert "interrupted; resumes after epoch 0" in printed and "9 rmse (0)" in printed
    assert main(["progress", str(tmp_path / "nowhere")]) != 0
    assert "nowhere: no such folder of runs" in capsys.readouterr().err
