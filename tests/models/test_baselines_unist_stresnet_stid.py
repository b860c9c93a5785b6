"""UniST, ST-ResNet and STID: shapes on tiny grids, registry options, context switches, learning."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.utils.data import DataLoader

from stvfm.data.prepared import prepare_data
from stvfm.data.windows import ProtocolConfig
from stvfm.errors import ConfigError
from stvfm.models import create_model
from stvfm.models.registry import recorded_options
from stvfm.testing import make_batch, overfit_losses

SMALL_UNIST = dict(width=16, encoder_depth=1, decoder_depth=1, heads=2, spatial_memory=8, temporal_memory=8)
SMALL_STRESNET = dict(filters=8, residual_units=1)


def unist_shape(tiny_shape, daily_context=3, **grid):
    return dataclasses.replace(tiny_shape, daily_context=daily_context, **grid)


@pytest.mark.parametrize("prompt", [True, False])
def test_unist_forecasts_a_grid_the_patch_does_not_divide(tiny_shape, prompt):
    shape = unist_shape(tiny_shape, daily_context=3 if prompt else 0, height=5, width=3, channels=2)
    model = create_model("unist", shape, prompt=prompt, daily_context=shape.daily_context, **SMALL_UNIST)
    forecast = model(make_batch(shape, batch_size=2))["forecast"]
    assert forecast.shape == (2, shape.horizon, 2, 5, 3)
    assert (model.prompts is not None) == prompt


def test_unist_prompts_read_the_previous_days(tiny_shape):
    shape = unist_shape(tiny_shape)
    model = create_model("unist", shape, dropout=0.0, **SMALL_UNIST).eval()
    batch = make_batch(shape, batch_size=2)
    changed = dict(batch, daily=batch["daily"] + 0.5)
    assert not torch.allclose(model.predict(batch), model.predict(changed))


def test_unist_forecast_never_sees_the_future(tiny_shape):
    shape = unist_shape(tiny_shape)
    model = create_model("unist", shape, **SMALL_UNIST).eval()
    batch = make_batch(shape, batch_size=2)
    assert torch.equal(model.predict(batch), model.predict(dict(batch, y=torch.zeros_like(batch["y"]))))


def test_unist_weights_load_into_a_model_for_another_grid(tiny_shape):
    small = create_model("unist", unist_shape(tiny_shape), **SMALL_UNIST)
    other_shape = unist_shape(tiny_shape, height=8, width=8, slots_per_day=48)
    other = create_model("unist", other_shape, **SMALL_UNIST)
    other.load_state_dict(small.state_dict())
    assert other.predict(make_batch(other_shape, batch_size=2)).shape == (2, 6, 1, 8, 8)


def test_unist_rejects_inconsistent_options(tiny_shape):
    with pytest.raises(ConfigError, match="daily_context=0"):
        create_model("unist", tiny_shape, prompt=False)
    with pytest.raises(ConfigError, match="data provides"):
        create_model("unist", tiny_shape)
    with pytest.raises(ConfigError, match="temporal_patch"):
        create_model("unist", unist_shape(tiny_shape), temporal_patch=4)


def test_unist_learns(tiny_shape):
    shape = unist_shape(tiny_shape)
    model = create_model("unist", shape, **SMALL_UNIST)
    first, last = overfit_losses(model, make_batch(shape, batch_size=2), steps=15)
    assert last < first


@pytest.mark.parametrize("daily_context, weekly_context", [(2, 1), (0, 0), (1, 0)])
def test_stresnet_branches_follow_the_context(tiny_shape, daily_context, weekly_context):
    shape = dataclasses.replace(tiny_shape, daily_context=daily_context, weekly_context=weekly_context, channels=2)
    context = dict(daily_context=daily_context, weekly_context=weekly_context)
    model = create_model("stresnet", shape, **context, **SMALL_STRESNET)
    expected = {"x"} | ({"daily"} if daily_context else set()) | ({"weekly"} if weekly_context else set())
    assert set(model.branches) == expected
    forecast = model(make_batch(shape, batch_size=2))["forecast"]
    assert forecast.shape == (2, shape.horizon, 2, shape.height, shape.width)
    assert forecast.abs().max() <= 1


def test_stresnet_rejects_missing_context(tiny_shape):
    with pytest.raises(ConfigError, match="data provides"):
        create_model("stresnet", tiny_shape)


def test_stresnet_learns(tiny_shape):
    shape = dataclasses.replace(tiny_shape, daily_context=2, weekly_context=1)
    model = create_model("stresnet", shape, **SMALL_STRESNET)
    first, last = overfit_losses(model, make_batch(shape, batch_size=2), steps=15)
    assert last < first


def test_stresnet_keeps_a_spatial_forecast_on_sparse_real_data(shared_data_dir):
    """Mostly-empty cells (scaled -1) once drove tanh into saturation: a constant forecast of 0."""
    data = prepare_data("bikenyc1", ProtocolConfig(steps=24 * 7 * 4, daily_context=2, weekly_context=1), root=shared_data_dir)
    train = data.dataset("train")
    torch.manual_seed(0)
    model = create_model("stresnet", data.forecast_shape, filters=16, residual_units=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4)
    order = torch.Generator().manual_seed(0)
    for _ in range(3):
        for batch in DataLoader(train, batch_size=8, shuffle=True, generator=order):
            optimizer.zero_grad()
            model.loss(batch, model(batch))["loss"].backward()
            optimizer.step()
    batch = next(iter(DataLoader(train, batch_size=64)))
    with torch.no_grad():
        forecast = model.eval()(batch)["forecast"]
    spatial_spread = lambda frames: frames.std(dim=(-2, -1)).mean()  # noqa: E731
    assert spatial_spread(forecast) > 0.5 * spatial_spread(batch["y"])


def test_stresnet_runs_recorded_before_batch_norm_rebuild_without_it(tiny_shape):
    shape = dataclasses.replace(tiny_shape, daily_context=2, weekly_context=1)
    old_record = dict(daily_context=2, weekly_context=1, **SMALL_STRESNET)
    options = recorded_options("stresnet", old_record)
    assert options["batch_norm"] is False
    model = create_model("stresnet", shape, **options)
    assert "branches.x.layers.1.body.1.weight" in model.state_dict()  # the conv's key as it was saved then
    assert not any(isinstance(layer, torch.nn.BatchNorm2d) for layer in model.modules())


def test_stresnet_rejects_an_unknown_output_activation(tiny_shape):
    shape = dataclasses.replace(tiny_shape, daily_context=2, weekly_context=1)
    with pytest.raises(ConfigError, match="output_activation"):
        create_model("stresnet", shape, output_activation="relu", **SMALL_STRESNET)


def test_stid_forecasts_every_cell_and_channel(tiny_shape):
    shape = dataclasses.replace(tiny_shape, channels=2)
    model = create_model("stid", shape, layers=2, series_width=8)
    assert model.config.layers == 2
    forecast = model(make_batch(shape, batch_size=3))["forecast"]
    assert forecast.shape == (3, shape.horizon, 2, shape.height, shape.width)


def test_stid_learns(tiny_shape):
    model = create_model("stid", tiny_shape, node_width=8, slot_width=8, weekday_width=8, series_width=8)
    first, last = overfit_losses(model, make_batch(tiny_shape, batch_size=3), steps=15)
    assert last < first
