"""Multi-dataset pre-training (UniST's recipe) and fine-tuning from it with ``fit --init-from``."""

from __future__ import annotations

import fcntl
import json

import numpy as np
import pytest
import torch

from stvfm.cli.main import main
from stvfm.errors import ConfigError
from stvfm.testing import write_synthetic_city
from stvfm.training.folders import IN_PROGRESS_NAME, LOCK_NAME
from stvfm.training.pretrain import PretrainConfig, pretrain
from stvfm.training.progress import progress

SMALL_UNIST = ["width=16", "encoder_depth=1", "decoder_depth=1", "heads=2", "spatial_memory=8", "temporal_memory=8"]


@pytest.fixture(scope="module")
def cities(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cities")
    # different grids and different slots per day: what UniST pre-trains across
    return (write_synthetic_city(folder / "hourly.npz", channel="flow"),
            write_synthetic_city(folder / "halfhourly.npz", days=10, height=4, width=6, interval_minutes=30, seed=1,
                                 channel="flow"))


def test_pretrain_on_two_grids_then_fine_tune_on_one(tmp_path, cities, capsys):
    hourly, halfhourly = cities
    out = tmp_path / "pre"
    options = [arg for option in SMALL_UNIST for arg in ("--set", option)]
    code = main(["pretrain", "--model", "unist", "--datasets", f"{hourly},{halfhourly}", "--out", str(out),
                 "--max-epochs", "2", "--limit-train-batches", "3", "--batch-size", "8", "--warmup-epochs", "0.5",
                 "--accelerator", "cpu", *options])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and set(metrics["val_loss_per_dataset"]) == {"hourly", "halfhourly"}
    # UniST's recipe gives what the flags leave open: its optimiser and the rest of its model size
    settings = metrics["settings"]
    assert settings["optim"]["grad_clip"] == 0.05 and settings["optim"]["warmup_epochs"] == 0.5
    assert settings["model_options"]["mlp_ratio"] == 2 and settings["model_options"]["width"] == 16
    assert settings["max_epochs"] == 2 and metrics["stop_reason"] == "epoch cap"
    assert np.isfinite(metrics["best_val_loss"])
    checkpoint = torch.load(out / "checkpoints" / "best.ckpt", weights_only=True)
    # one copy of the weights, whatever the number of datasets
    assert all(key.startswith("model.") for key in checkpoint["state_dict"])
    fine = tmp_path / "fine"
    code = main(["fit", "--model", "unist", "--dataset", str(halfhourly), "--out", str(fine), "--max-epochs", "0",
                 "--init-from", str(out / "checkpoints" / "best.ckpt"), "--accelerator", "cpu", *options])
    assert code == 0, capsys.readouterr().err
    assert np.isfinite(json.loads((fine / "metrics.json").read_text())["rmse"])


def test_pretraining_logs_its_training_loss_without_guessing_a_batch_size(tmp_path, recwarn):
    """Each step trains on one batch per dataset; Lightning cannot read one batch size from them and warns."""
    first = write_synthetic_city(tmp_path / "a.npz", days=10, height=4, width=4)
    second = write_synthetic_city(tmp_path / "b.npz", days=12, height=4, width=4, seed=1)
    assert main(["pretrain", "--model", "stid", "--datasets", f"{first},{second}", "--out", str(tmp_path / "pre"),
                 "--max-epochs", "1", "--accelerator", "cpu"]) == 0
    assert not [warning for warning in recwarn if "ambiguous collection" in str(warning.message)]


def test_models_with_grid_sized_weights_cannot_pretrain_across_grids(tmp_path, cities):
    with pytest.raises(ConfigError, match="cannot pre-train across grids"):
        pretrain(PretrainConfig(model="stid", datasets=[str(path) for path in cities], out=str(tmp_path),
                                max_epochs=1, accelerator="cpu", progress=False))


def test_pretraining_needs_two_datasets_and_a_learned_model():
    with pytest.raises(ConfigError, match="two or more"):
        PretrainConfig(model="unist", datasets=["bikenyc1"], out="x")
    with pytest.raises(ConfigError, match="classical"):
        PretrainConfig(model="ha-week", datasets=["bikenyc1", "taxinyc1"], out="x")


def test_pretraining_resumes_across_sittings_and_refuses_another_runs_folder(tmp_path, cities, capsys):
    hourly, halfhourly = cities
    out = tmp_path / "pre"
    options = [arg for option in SMALL_UNIST for arg in ("--set", option)]
    command = ["pretrain", "--model", "unist", "--datasets", f"{hourly},{halfhourly}", "--out", str(out),
               "--max-epochs", "3", "--limit-train-batches", "2", "--batch-size", "8", "--warmup-epochs", "0.5",
               "--accelerator", "cpu", *options]
    # a first sitting capped after one batch: stopped by the time cap, last.ckpt at its epoch end
    assert main([*command, "--max-minutes", "0.0002"]) == 0, capsys.readouterr().err
    first = json.loads((out / "metrics.json").read_text())
    assert first["stop_reason"] == "time cap" and first["epochs"] == 1
    (standing,) = progress(tmp_path)
    assert standing.state == "time cap; resumable" and standing.dataset == f"{hourly}+{halfhourly}"
    assert standing.epochs_done == 1 and standing.best["epoch"] == 0 and standing.selection == "val/loss"
    with open(out / LOCK_NAME, "a") as held:  # a sitting of another process holds the folder
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert main(command) != 0 and "another stvfm process" in capsys.readouterr().err
    assert json.loads((out / "metrics.json").read_text()) == first  # the refused sitting changed nothing
    assert main(command) == 0, capsys.readouterr().err  # the next sitting, uncapped, finishes the schedule
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["stop_reason"] == "epoch cap" and metrics["epochs"] == 3
    assert not (out / IN_PROGRESS_NAME).exists() and progress(tmp_path)[0].state == "epoch cap"
    assert [s["epochs_reached"] for s in metrics["sittings"]] == [1, 3]
    logged = (out / "logs" / "metrics.csv").read_text().splitlines()
    assert {line.split(",")[0] for line in logged[1:]} >= {"0", "1", "2"}  # the first sitting's epoch is kept
    code = main([*command[:-len(options)], "--lr", "1e-2", *options])
    assert code != 0 and "left by another pre-training (differs in optim)" in capsys.readouterr().err
