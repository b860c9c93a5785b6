"""A `stvfm fit` killed with SIGKILL and run again resumes to exactly the run it would have been.

Lightning writes ``last.ckpt`` at epoch ends, so a kill mid-epoch resumes from the last epoch
end. The training order (``EpochShuffleSampler``) and the dropout stream (re-seeded per batch by
``ForecastTask``) are functions of (seed, epoch) only, so in fp32 on CPU with one thread the
resumed run equals the uninterrupted one bit for bit: metrics, predictions and weights.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
from robust_helpers import child_env, fit_command, run_to_end

from stvfm.training.checkpoints import load_checkpoint
from stvfm.training.progress import run_progress

EPOCHS = 8
SAME_KEYS = ("mae", "rmse", "per_horizon", "n_windows", "n_points", "epochs", "best_val_score", "parameters")


def test_main_module_has_an_exit_guard():
    source = Path(__import__("stvfm.cli.main", fromlist=["main"]).__file__).read_text()
    assert 'if __name__ == "__main__":\n    sys.exit(main())' in source


def _checkpointed_epoch(last: Path) -> int | None:
    try:
        return int(load_checkpoint(last)["epoch"])
    except Exception:  # still being written
        return None


def _epoch_row_logged(out: Path, epoch: int) -> bool:
    try:
        return any(row.get("epoch") == str(epoch) and row.get("train/loss_epoch") for row in _csv_rows(out / "logs" / "metrics.csv"))
    except (OSError, ValueError):  # not written yet, or being rewritten
        return False


def _kill_after_an_epoch(command: list[str], out: Path, after: Path | None = None) -> int:
    """Start ``command``, SIGKILL it a little after it writes ``last.ckpt`` (after: a checkpoint newer than
    the one of this path's time) and logs that epoch's training row; return the epoch that checkpoint holds.

    Lightning writes an epoch's checkpoint before it logs the epoch's training averages, so a kill in
    that instant loses the row (the run resumes from the next epoch and never logs it again); the test
    kills after it, where the logs are whole."""
    last = out / "checkpoints" / "last.ckpt"
    since = last.stat().st_mtime_ns if after is not None else None
    process = subprocess.Popen(command, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        epoch = None
        while (not last.exists() or (since is not None and last.stat().st_mtime_ns == since)
               or (epoch := _checkpointed_epoch(last)) is None or not _epoch_row_logged(out, epoch)):
            assert process.poll() is None, f"fit ended before writing last.ckpt: {process.stderr.read()[-2000:]!r}"
            assert time.monotonic() < deadline, "no new last.ckpt after 90 s"
            time.sleep(0.01)
        time.sleep(random.Random(0).uniform(0.0, 0.05))  # land early inside the next epoch
        assert process.poll() is None, "fit finished before it could be killed; make the run longer"
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()
    return int(load_checkpoint(last)["epoch"])


def test_killed_fit_resumes_to_the_uninterrupted_result(tmp_path, tiny_city):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    reference = subprocess.Popen(fit_command(tiny_city, straight, epochs=EPOCHS), env=child_env(),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        command = fit_command(tiny_city, killed, epochs=EPOCHS)
        first = _kill_after_an_epoch(command, killed)
        # Killed: no metrics.json, or (never half-written) a complete one; temp files are not outputs.
        metrics_path = killed / "metrics.json"
        assert not metrics_path.exists() or "rmse" in json.loads(metrics_path.read_text())
        # a second sitting, killed too: the first one's epoch logs must outlive it
        second = _kill_after_an_epoch(command, killed, after=killed / "checkpoints" / "last.ckpt")
        assert first < second < EPOCHS - 1, "the kills came too late: nothing left to resume"
        standing = run_progress(killed)  # what `stvfm progress` says of it between sittings
        assert standing.state == f"interrupted; resumes after epoch {second}" and standing.sittings == 2
        assert standing.epochs_done == second + 1 and standing.best is not None
        run_to_end(command)  # same command: resumes from last.ckpt
    finally:
        _, errors = reference.communicate(timeout=480)
    assert reference.returncode == 0, errors[-3000:]

    resumed = json.loads((killed / "metrics.json").read_text())
    uninterrupted = json.loads((straight / "metrics.json").read_text())
    assert resumed["epochs"] == EPOCHS
    for key in SAME_KEYS:
        assert resumed[key] == uninterrupted[key], key  # bitwise: fp32, CPU, one thread

    a, b = np.load(straight / "predictions.npz"), np.load(killed / "predictions.npz")
    for name in ("prediction", "target", "start"):
        np.testing.assert_array_equal(a[name], b[name])
    weights_a = load_checkpoint(straight / "checkpoints" / "best.ckpt")["state_dict"]
    weights_b = load_checkpoint(killed / "checkpoints" / "best.ckpt")["state_dict"]
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    assert not list((killed / "checkpoints").glob("*-v*.ckpt")), "stale checkpoints were versioned aside"

    # the epochs before both kills are still in the CSV log (Lightning's CSVLogger deletes it on restart)
    logs = [_csv_rows(folder / "logs" / "metrics.csv") for folder in (straight, killed)]
    assert [row["epoch"] for row in logs[1]] == [row["epoch"] for row in logs[0]]
    assert [row.get("val/loss") for row in logs[1]] == [row.get("val/loss") for row in logs[0]]


def _csv_rows(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# --- what fit finds in its folder is checked, not trusted -------------------------------------------------

def _config(tiny_city, out, **changes):
    """A one-epoch stid run at a constant rate, so that more epochs resume it rather than make another run."""
    from stvfm.training.config import RunConfig
    from stvfm.training.settings import OptimConfig

    settings = dict(model="stid", dataset=str(tiny_city), out=str(out), max_epochs=1, batch_size=16,
                    progress=False, accelerator="cpu", precision="32", optim=OptimConfig(schedule="constant"))
    return RunConfig(**{**settings, **changes})


def test_a_fresh_run_does_not_keep_a_stale_best_checkpoint(tmp_path, tiny_city):
    from stvfm.training.runner import evaluate_checkpoint, fit

    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    (out / "checkpoints" / "best.ckpt").write_bytes(b"left by an earlier, killed run")  # no last.ckpt
    metrics = fit(_config(tiny_city, out))
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert Path(metrics["checkpoint"]) == out / "checkpoints" / "best.ckpt"
    again = evaluate_checkpoint(metrics["checkpoint"], tmp_path / "again")
    assert again["mae"] == metrics["mae"] and again["rmse"] == metrics["rmse"]


def test_a_truncated_last_checkpoint_is_a_checkpoint_error(tmp_path, tiny_city):
    import pytest

    from stvfm.errors import CheckpointError
    from stvfm.training.runner import fit

    out = tmp_path / "run"
    fit(_config(tiny_city, out))
    last = out / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="last.ckpt: not a readable stvfm checkpoint") as raised:
        fit(_config(tiny_city, out, max_epochs=2))
    assert len(str(raised.value).splitlines()) == 1
    last.write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match="last.ckpt"):
        fit(_config(tiny_city, out, max_epochs=2))


def test_a_last_checkpoint_of_other_settings_is_refused(tmp_path, tiny_city):
    import pytest

    from stvfm.errors import ConfigError
    from stvfm.training.runner import fit

    out = tmp_path / "run"
    first = fit(_config(tiny_city, out))
    (out / "config.yaml").unlink()  # a run killed before its records were written: only last.ckpt says what it was
    (out / "metrics.json").rename(out / "kept.json")
    with pytest.raises(ConfigError, match=r"last.ckpt: left by another run \(differs in model_options\)"):
        fit(_config(tiny_city, out, model_options={"layers": 1}))
    with pytest.raises(ConfigError, match=r"another run \(differs in seed\)"):
        fit(_config(tiny_city, out, seed=5))
    assert json.loads((out / "kept.json").read_text())["mae"] == first["mae"] and not (out / "metrics.json").exists()
    resumed = fit(_config(tiny_city, out, max_epochs=2))  # same settings, longer: resumes
    assert resumed["epochs"] == 2
