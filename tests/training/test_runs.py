"""End-to-end runs on a small real slice: fit -> checkpoint -> test, predictions vs metrics, predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from stvfm.data.prepared import prepare_data
from stvfm.data.windows import ProtocolConfig
from stvfm.models import create_model
from stvfm.models.registry import resolved_options
from stvfm.testing import overfit_losses
from stvfm.training.config import RunConfig
from stvfm.training.runner import evaluate_checkpoint, fit

TINY_STVFM = {"backbone": "tiny", "weights": "random", "temporal_dim": 16, "temporal_heads": 2,
              "encoder_layers": 1, "decoder_layers": 1}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, shared_data_dir):
    out = tmp_path_factory.mktemp("run")
    config = RunConfig(model="stvfm", dataset="bikenyc1", out=str(out), steps=300, model_options=TINY_STVFM,
                       max_epochs=2, batch_size=32, progress=False, data_root=str(shared_data_dir),
                       accelerator="cpu")
    return config, fit(config)


def test_fit_writes_every_output(tiny_run):
    config, metrics = tiny_run
    out = config.out
    for name in ("config.yaml", "metrics.json", "predictions.npz", "checkpoints/best.ckpt", "checkpoints/last.ckpt"):
        assert (Path(out) / name).exists(), name
    saved = json.loads((Path(out) / "metrics.json").read_text())
    assert saved["dataset"] == "bikenyc1" and saved["channel"] == 0 and saved["split"] == "test"
    assert saved["weights"]["label"].endswith("(random-init)")
    assert saved["parameters"]["frozen"] > 0 and saved["parameters"]["trainable"] > 0
    assert len(saved["per_horizon"]["mae"]) == 6 and saved["epochs"] == 2
    # every model option is written out, defaults included, so a later change of default cannot blur the record
    recorded = yaml.safe_load((Path(out) / "config.yaml").read_text())["model_options"]
    assert recorded == saved["settings"]["model_options"] == resolved_options("stvfm", TINY_STVFM)
    assert recorded["temporal_dim"] == 16 and recorded["flow_weight"] == 1.0 and "calendar_init_std" in recorded


def test_logged_metrics_equal_numpy_over_saved_predictions(tiny_run):
    config, metrics = tiny_run
    saved = np.load(Path(config.out) / "predictions.npz")
    error = saved["prediction"].astype(np.float64) - saved["target"]
    assert saved["prediction"].shape[0] == metrics["n_windows"]
    assert metrics["mae"] == pytest.approx(np.abs(error).mean(), rel=1e-6)
    assert metrics["rmse"] == pytest.approx(np.sqrt((error ** 2).mean()), rel=1e-6)
    per_step = np.sqrt((error ** 2).mean(axis=(0, 2, 3, 4)))
    np.testing.assert_allclose(metrics["per_horizon"]["rmse"], per_step, rtol=1e-6)


def test_checkpoint_reproduces_test_metrics(tiny_run, tmp_path):
    config, metrics = tiny_run
    again = evaluate_checkpoint(Path(config.out) / "checkpoints" / "best.ckpt", tmp_path)
    assert again["mae"] == pytest.approx(metrics["mae"], rel=1e-6)
    assert again["rmse"] == pytest.approx(metrics["rmse"], rel=1e-6)


def test_predict_rebuilds_an_old_record_as_test_does(tiny_run, tmp_path, monkeypatch):
    """A checkpoint recorded before calendar_init_std existed: predict, like test, rebuilds ST-VFM with the
    option's former default (1.0), not today's, and forecasts the horizon after the input's end."""
    from stvfm.testing import write_synthetic_city
    from stvfm.training import checkpoints
    from stvfm.training.inference import predict

    config, _ = tiny_run
    saved = torch.load(Path(config.out) / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    del saved["stvfm"]["run"]["model_options"]["calendar_init_std"]
    old = tmp_path / "old.ckpt"
    torch.save(saved, old)
    record = saved["stvfm"]["data"]
    shape = record["shape"]
    city = write_synthetic_city(tmp_path / "city.npz", days=2, height=shape["height"], width=shape["width"],
                                interval_minutes=record["interval_minutes"])
    built = []
    create = checkpoints.create_model
    monkeypatch.setattr(checkpoints, "create_model",
                        lambda name, grid, **options: built.append(options) or create(name, grid, **options))
    forecast = predict(old, city, tmp_path / "forecast.npz", accelerator="cpu")
    assert [options["calendar_init_std"] for options in built] == [1.0]
    assert forecast.values.shape == (shape["horizon"], shape["channels"], shape["height"], shape["width"])
    _, _, tested = checkpoints.restore(old)
    assert tested.config.calendar_init_std == 1.0


def test_a_bf16_checkpoint_reproduces_its_metrics_and_tests_in_fp32(tmp_path, shared_data_dir):
    """bf16 runs store the frozen ViT in bf16; the checkpoint still re-tests exactly and loads into fp32."""
    config = RunConfig(model="stvfm", dataset="bikenyc1", out=str(tmp_path / "run"), steps=300,
                       model_options=TINY_STVFM, max_epochs=1, limit_train_batches=2, batch_size=32, progress=False,
                       data_root=str(shared_data_dir), accelerator="cpu", precision="bf16")
    metrics = fit(config)
    best = tmp_path / "run" / "checkpoints" / "best.ckpt"
    saved = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
    assert any(value.dtype == torch.bfloat16 for key, value in saved.items() if ".backbone." in key)
    assert evaluate_checkpoint(best, tmp_path / "bf16")["rmse"] == pytest.approx(metrics["rmse"], rel=1e-6)
    fp32 = evaluate_checkpoint(best, tmp_path / "fp32", precision="32")
    assert fp32["rmse"] == pytest.approx(metrics["rmse"], rel=0.05)


def test_a_few_steps_on_real_windows_lower_the_loss(shared_data_dir):
    data = prepare_data("bikenyc1", ProtocolConfig(steps=300), root=shared_data_dir)
    items = [data.dataset("train")[i] for i in range(0, 64, 8)]
    batch = {key: torch.stack([item[key] for item in items]) for key in items[0]}
    torch.manual_seed(0)
    model = create_model("stvfm", data.forecast_shape, **TINY_STVFM)
    first, last = overfit_losses(model, batch, steps=25)
    assert last < 0.7 * first


def test_each_sitting_of_a_resumed_run_is_recorded(tmp_path, shared_data_dir):
    """A run extended in a second sitting keeps the first sitting's compute: the relay's records show both."""
    from stvfm.training.settings import OptimConfig

    common = dict(model="stid", dataset="bikenyc1-60d", out=str(tmp_path), steps=300, batch_size=64,
                  progress=False, data_root=str(shared_data_dir), accelerator="cpu",
                  optim=OptimConfig(schedule="constant", warmup_epochs=0))
    first = fit(RunConfig(max_epochs=1, **common))
    second = fit(RunConfig(max_epochs=2, **common))
    assert [sitting["epochs_reached"] for sitting in first["sittings"]] == [1]
    assert [sitting["epochs_reached"] for sitting in second["sittings"]] == [1, 2]
    assert second["sittings"][0] == first["sittings"][0]
    assert second["total_train_seconds"] == pytest.approx(sum(s["train_seconds"] for s in second["sittings"]))
    assert second["sittings"][1]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert json.loads((tmp_path / "sittings.json").read_text()) == second["sittings"]


def test_a_resumed_sitting_gets_its_own_time_cap():
    """A checkpoint saved when a sitting hit its cap holds the time spent; restoring it must not end
    the next sitting before its first step (that run would be recorded as stopped early)."""
    from lightning.pytorch.callbacks import Timer

    from stvfm.training.trainer import sitting_timer

    spent = {"time_elapsed": {"train": 3600.0, "validate": 0.0, "test": 0.0}}
    lightning_timer = Timer(duration={"minutes": 60})
    lightning_timer.load_state_dict(spent)
    assert lightning_timer.time_elapsed("train") >= 3600  # what made resumed sittings stop at once
    (timer,) = sitting_timer(60)
    timer.load_state_dict(spent)
    assert timer.time_elapsed("train") == 0 and timer.time_remaining("train") == 3600
    assert sitting_timer(None) == []
