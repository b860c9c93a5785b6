"""Video-prediction (SimVP, TAU, PredRNN) and multivariate-series (PatchTST, iTransformer) baselines."""

from __future__ import annotations

import pytest
import torch

from stvfm.errors import ConfigError
from stvfm.models import ForecastShape, create_model
from stvfm.models.tau import differential_divergence
from stvfm.testing import make_batch, overfit_losses

#: Small widths so that every test runs in well under a second per model.
TINY = {
    "simvp": dict(hidden_spatial=8, hidden_temporal=16, temporal_layers=2, inception_kernels=(3, 5), inception_groups=2),
    "tau": dict(hidden_spatial=8, hidden_temporal=16, temporal_layers=2),
    "predrnn": dict(layers=2, hidden=8, kernel=3),
    "patchtst": dict(width=16, heads=2, layers=1, feedforward=32),
    "itransformer": dict(width=16, heads=2, layers=1, feedforward=32),
}
NAMES = sorted(TINY)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "shape",
    [
        ForecastShape(history=6, horizon=6, channels=1, height=6, width=4, slots_per_day=24),
        ForecastShape(history=6, horizon=6, channels=1, height=5, width=3, slots_per_day=24),
        ForecastShape(history=4, horizon=3, channels=2, height=7, width=8, slots_per_day=48),
    ],
    ids=["6x4", "odd5x3", "P4Q3C2"],
)
def test_forecast_shape(name, shape):
    model = create_model(name, shape, **TINY[name]).eval()
    batch = make_batch(shape, batch_size=2)
    forecast = model.predict(batch)
    assert forecast.shape == (2, shape.horizon, shape.channels, shape.height, shape.width)
    assert torch.isfinite(forecast).all()


@pytest.mark.parametrize("name", NAMES)
def test_loss_decreases_when_overfitting_one_batch(name, tiny_shape):
    torch.manual_seed(0)
    model = create_model(name, tiny_shape, **TINY[name])
    first, last = overfit_losses(model, make_batch(tiny_shape, batch_size=3), steps=20)
    assert last < first


@pytest.mark.parametrize("name", NAMES)
def test_defaults_build_and_run_on_a_16x8_grid(name):
    shape = ForecastShape(history=6, horizon=6, channels=1, height=16, width=8)
    model = create_model(name, shape).eval()
    assert model.predict(make_batch(shape, batch_size=2)).shape == (2, 6, 1, 16, 8)


def test_tau_loss_logs_the_differential_divergence(tiny_shape):
    model = create_model("tau", tiny_shape, **TINY["tau"], divergence_weight=0.5)
    batch = make_batch(tiny_shape, batch_size=2)
    terms = model.loss(batch, model(batch))
    assert {"loss", "mse_st", "divergence"} <= set(terms)
    assert float(terms["divergence"]) > 0
    assert torch.isclose(terms["loss"], terms["mse_st"] + 0.5 * terms["divergence"])


def test_differential_divergence_vanishes_only_when_frames_move_alike():
    target = torch.randn(2, 4, 1, 3, 3)
    assert float(differential_divergence(target, target, temperature=0.1)) == pytest.approx(0.0, abs=1e-6)
    assert float(differential_divergence(target + 5.0, target, temperature=0.1)) == pytest.approx(0.0, abs=1e-6)
    assert float(differential_divergence(torch.randn_like(target), target, temperature=0.1)) > 0


def test_predrnn_never_reads_the_true_future_at_evaluation(tiny_shape):
    model = create_model("predrnn", tiny_shape, **TINY["predrnn"], scheduled_sampling_iterations=100).eval()
    batch = make_batch(tiny_shape, batch_size=2)
    other_future = dict(batch, y=torch.zeros_like(batch["y"]))
    without_future = {key: value for key, value in batch.items() if key != "y"}
    forecast = model.predict(batch)
    assert torch.equal(forecast, model.predict(other_future))
    assert torch.equal(forecast, model.predict(without_future))


def test_predrnn_scheduled_sampling_feeds_the_true_future_early_in_training(tiny_shape):
    batch = make_batch(tiny_shape, batch_size=2)
    other_future = dict(batch, y=torch.zeros_like(batch["y"]))
    sampled = create_model("predrnn", tiny_shape, **TINY["predrnn"], scheduled_sampling_iterations=100).train()
    assert not torch.equal(sampled(batch)["forecast"], sampled(other_future)["forecast"])
    assert int(sampled.training_iterations) == 2
    free_running = create_model("predrnn", tiny_shape, **TINY["predrnn"]).train()
    assert torch.equal(free_running(batch)["forecast"], free_running(other_future)["forecast"])


def test_patchtst_forecasts_each_cell_from_its_own_history_only(tiny_shape):
    model = create_model("patchtst", tiny_shape, **TINY["patchtst"]).eval()
    batch = make_batch(tiny_shape, batch_size=2)
    changed = dict(batch, x=batch["x"].clone())
    changed["x"][:, :, :, 0, 0] += 1.0
    difference = (model.predict(batch) - model.predict(changed)).abs().sum(dim=(0, 1, 2))
    assert difference[0, 0] > 0
    difference[0, 0] = 0
    assert float(difference.max()) < 1e-5


def test_itransformer_lets_cells_attend_to_each_other(tiny_shape):
    model = create_model("itransformer", tiny_shape, **TINY["itransformer"], dropout=0.0).eval()
    batch = make_batch(tiny_shape, batch_size=2)
    changed = dict(batch, x=batch["x"].clone())
    changed["x"][:, :, :, 0, 0] += 1.0
    difference = (model.predict(batch) - model.predict(changed)).abs().sum(dim=(0, 1, 2))
    assert float(difference[1:].max()) > 0


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("simvp", {"temporal_layers": 1}),
        ("tau", {"temporal_layers": 1}),
        ("patchtst", {"patch_length": 7}),
        ("predrnn", {"patch": 0}),
    ],
)
def test_inconsistent_options_are_config_errors(name, options, tiny_shape):
    with pytest.raises(ConfigError):
        create_model(name, tiny_shape, **options)


def test_simvp_runs_its_convolutions_channels_last_with_the_same_forecast():
    shape = ForecastShape(history=6, horizon=6, channels=1, height=6, width=4, slots_per_day=24)
    model = create_model("simvp", shape, **TINY["simvp"]).eval()
    convolutions = [module.weight for module in model.modules() if isinstance(module, torch.nn.Conv2d)]
    assert convolutions and all(weight.is_contiguous(memory_format=torch.channels_last) for weight in convolutions)
    contiguous = create_model("simvp", shape, **TINY["simvp"]).eval()
    contiguous.load_state_dict(model.state_dict())
    contiguous.to(memory_format=torch.contiguous_format)
    batch = make_batch(shape, batch_size=2)
    torch.testing.assert_close(model.predict(batch), contiguous.predict(batch), atol=1e-5, rtol=1e-5)
