"""FLOPs are counted per window from a model's settings, on the meta device, for every learned model."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from stvfm.models.registry import build_config, list_models
from stvfm.shape import ForecastShape
from stvfm.training.flops import count_flops, window_flops

LEARNED = [entry.name for entry in list_models() if entry.cls.trainable]


@pytest.mark.parametrize("groups", [1, 4, 32])
def test_a_convolution_backward_costs_twice_its_forward_grouped_or_not(groups):
    # torch's own formula counts a grouped convolution's weight gradient as if ungrouped (32x too many here)
    conv = torch.nn.Conv2d(32, 32, 3, padding=1, groups=groups)
    frames = torch.randn(2, 32, 8, 8, requires_grad=True)
    forward = count_flops(lambda: conv(frames))
    assert count_flops(lambda: conv(frames).sum().backward()) == 3 * forward


@pytest.mark.parametrize("model", LEARNED)
def test_every_learned_model_counts_its_window_flops_without_computing(model):
    config = build_config(model, {})
    shape = dataclasses.replace(ForecastShape(height=8, width=8, slots_per_day=24),
                                daily_context=int(getattr(config, "daily_context", 0)),
                                weekly_context=int(getattr(config, "weekly_context", 0)))
    flops = window_flops(model, shape, {})
    assert flops.train > flops.val > 0  # training adds the backward pass to the forward validation does
