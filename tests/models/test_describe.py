"""``Forecaster.describe``: each model says what it really used, and results write exactly that."""

from __future__ import annotations

import pytest

from stvfm.errors import ConfigError
from stvfm.models import create_model
from stvfm.training.results import model_description
from stvfm.training.speed import compile_backbone

TINY_STVFM = dict(backbone="tiny", weights="random", temporal_dim=16, temporal_heads=2, encoder_layers=1,
                  decoder_layers=1)
TINY_STLLM = dict(weights="random", llm_layers=2, embed_width=8,
                  gpt2_overrides=dict(n_embd=32, n_layer=2, n_head=2, n_positions=64))


def test_stvfm_names_its_backbone_its_weights_and_its_variant(tiny_shape):
    model = create_model("stvfm", tiny_shape, variant="simple", **TINY_STVFM)
    facts = model.describe()
    assert facts == {"backbone": "tiny", "weights": model.backbone.weights.to_dict(), "variant": "simple"}
    assert "random" in facts["weights"]["label"]
    assert model_description(model) == {"parameters": model_description(model)["parameters"], **facts}


def test_stllm_names_its_gpt2_weights_and_no_vision_backbone(tiny_shape):
    model = create_model("stllm", tiny_shape, **TINY_STLLM)
    assert model.describe() == {"weights": {"label": "GPT-2 (random-init)"}}
    with pytest.raises(ConfigError, match="no vision backbone"):
        compile_backbone(model)  # it holds GPT-2, which --compile-backbone does not compile


@pytest.mark.parametrize("name", ["stid", "ha-week"])
def test_a_model_without_pretrained_parts_describes_nothing_beyond_its_parameters(name, tiny_shape):
    model = create_model(name, tiny_shape)
    assert model.describe() == {}
    assert set(model_description(model)) == {"parameters"}
