"""EMA weight averaging (``optim.ema_decay``): the average is what is validated, kept and tested,
and a run stopped mid-way resumes to the uninterrupted result, average and raw weights both."""

from __future__ import annotations

import dataclasses

import lightning as L
import pytest
import torch

from stvfm.errors import ConfigError
from stvfm.training.checkpoints import load_checkpoint
from stvfm.training.config import RunConfig
from stvfm.training.runner import evaluate_checkpoint, fit
from stvfm.training.settings import OptimConfig

EPOCHS = 4


def _config(tiny_city, out, **changes) -> RunConfig:
    settings = dict(model="stid", dataset=str(tiny_city), out=str(out), max_epochs=EPOCHS, batch_size=16,
                    patience=50, progress=False, accelerator="cpu", precision="32", seed=3,
                    optim=OptimConfig(lr=3e-3, warmup_epochs=0.5, ema_decay=0.9))
    return RunConfig(**{**settings, **changes})


class _StopAtEpoch(L.Callback):
    """Fails the run as a crash would, after ``epoch`` whole epochs have their checkpoints."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, module) -> None:
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("simulated crash")


def test_the_average_is_selected_and_tested_and_a_crashed_run_resumes_to_the_same_result(tmp_path, tiny_city):
    torch.set_num_threads(1)
    straight = fit(_config(tiny_city, tmp_path / "straight"))
    best = load_checkpoint(tmp_path / "straight" / "checkpoints" / "best.ckpt")
    averaged, raw = best["state_dict"], best["current_model_state"]
    assert averaged.keys() == raw.keys()
    assert any(not torch.equal(averaged[key], raw[key]) for key in averaged), "the average is the raw weights"
    # what fit tested is the averaged model the checkpoint holds
    again = evaluate_checkpoint(straight["checkpoint"], tmp_path / "again")
    assert (again["mae"], again["rmse"]) == (straight["mae"], straight["rmse"])

    crashed = _config(tiny_city, tmp_path / "crashed")
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(crashed, callbacks=[_StopAtEpoch(2)])
    assert load_checkpoint(tmp_path / "crashed" / "checkpoints" / "last.ckpt")["epoch"] == 1
    resumed = fit(crashed)
    for key in ("mae", "rmse", "per_horizon", "epochs", "best_val_score"):
        assert resumed[key] == straight[key], key
    resumed_best = load_checkpoint(tmp_path / "crashed" / "checkpoints" / "best.ckpt")
    for part in ("state_dict", "current_model_state"):
        assert all(torch.equal(resumed_best[part][k], best[part][k]) for k in best[part]), part


def test_no_decay_means_no_averaging_and_a_bad_one_is_refused(tmp_path, tiny_city):
    config = _config(tiny_city, tmp_path / "plain", max_epochs=1,
                     optim=dataclasses.replace(OptimConfig(), ema_decay=0.0))
    fit(config)
    assert "current_model_state" not in load_checkpoint(tmp_path / "plain" / "checkpoints" / "best.ckpt")
    for decay in (1.0, -0.1):
        with pytest.raises(ConfigError, match="ema_decay"):
            OptimConfig(ema_decay=decay)
