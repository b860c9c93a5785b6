"""Odd grids are padded with the scaled value of 0 counts, not with 0 (the middle of the [-1, 1] range)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stvfm.backbones import create_backbone
from stvfm.data.prepared import prepare_series
from stvfm.data.series import GridSeries
from stvfm.models.patching import unpatchify
from stvfm.models.stvfm import STVFM, STVFMConfig
from stvfm.shape import ForecastShape
from stvfm.testing import make_batch


def test_the_prepared_shape_carries_the_scaled_value_of_zero_counts():
    steps = 24 * 10
    values = np.random.default_rng(0).uniform(10, 30, (steps, 1, 5, 3)).astype(np.float32)
    values[0, 0, 0, 0], values[1, 0, 0, 0] = 10.0, 30.0  # the training split spans 10..30
    series = GridSeries(name="odd", values=values, interval_minutes=60, channel_names=("c",),
                        timestamps=np.datetime64("2024-01-01T00:00", "s") + np.arange(steps) * np.timedelta64(3600, "s"))
    shape = prepare_series(series).forecast_shape
    assert shape.scaled_zero == pytest.approx(-2.0)  # (0 - 10) * 2 / 20 - 1


def test_stvfm_pads_an_odd_grid_with_the_scaled_zero():
    shape = ForecastShape(history=6, horizon=6, channels=1, height=5, width=3, slots_per_day=24, scaled_zero=-0.6)
    torch.manual_seed(0)
    model = STVFM(shape, STVFMConfig(variant="full", temporal_dim=16, temporal_heads=2, encoder_layers=1,
                                     decoder_layers=1), backbone=create_backbone("tiny", weights="random"))
    seen = []
    model.token_adapters["st"].register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0]))
    model(make_batch(shape, 2))
    frames = unpatchify(seen[0], model.config.patch, shape.channels, 6, 4)  # the 5x3 grid padded to 6x4
    assert torch.all(frames[..., 5, :] == -0.6) and torch.all(frames[..., :, 3] == -0.6)
    assert not torch.any(frames[..., :5, :3] == -0.6)
