"""Every registered model's forward and loss run with model and batch on the ``meta`` device:
a tensor made on the CPU by mistake (which would cost a copy, or fail, on a GPU) fails here."""

from __future__ import annotations

import pytest
import torch

from stvfm.models.registry import build_config, create_model, list_models
from stvfm.shape import ForecastShape
from stvfm.testing import SMALL_BACKBONE_CONFIGS, make_batch

SMALL_OPTIONS = {
    "stvfm": {"weights": "random", "backbone_overrides": SMALL_BACKBONE_CONFIGS["dinov2-s"], "temporal_dim": 16,
              "temporal_heads": 2, "encoder_layers": 1, "decoder_layers": 1},
    "stllm": {"weights": "random", "llm_layers": 2, "gpt2_overrides": {"n_embd": 32, "n_layer": 2, "n_head": 2}},
}
LEARNED = [entry.name for entry in list_models() if entry.cls.trainable]


@pytest.mark.parametrize("name", LEARNED)
def test_forward_and_loss_run_on_the_meta_device(name):
    options = SMALL_OPTIONS.get(name, {})
    model_config = build_config(name, options)
    shape = ForecastShape(channels=1, height=4, width=4, slots_per_day=24,
                          daily_context=int(getattr(model_config, "daily_context", 0)),
                          weekly_context=int(getattr(model_config, "weekly_context", 0)))
    with torch.device("meta"):
        model = create_model(name, shape, **options)
    batch = {key: value.to("meta") for key, value in make_batch(shape, 2).items()}
    loss = model.loss(batch, model(batch))["loss"]
    assert loss.device.type == "meta" and loss.shape == ()
