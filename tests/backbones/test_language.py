"""ST-LLM's GPT-2 goes through the ViTs' weight providers and keeps the same weights record."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from stvfm.backbones import WeightsInfo
from stvfm.backbones.language import load_gpt2
from stvfm.errors import ConfigError

TINY_GPT2 = dict(n_embd=32, n_layer=2, n_head=2, n_positions=64)


def test_random_gpt2_has_the_backbones_weights_record():
    _, info = load_gpt2("random", TINY_GPT2)
    assert info == WeightsInfo("random", "", False, "GPT-2 (random-init)")


@pytest.mark.parametrize("spec", ["gpt2", "path:", "random:x"])
def test_gpt2_specs_are_parsed_by_the_backbones_parser(spec):
    with pytest.raises(ConfigError, match="unknown weights"):
        load_gpt2(spec, TINY_GPT2)


def test_a_language_model_head_file_loads_into_gpt2(tmp_path):
    torch.manual_seed(0)
    source, _ = load_gpt2("random", TINY_GPT2)
    state = {f"transformer.{key}": value.contiguous() for key, value in source.state_dict().items()}
    state["lm_head.weight"] = source.wte.weight.clone()
    save_file(state, tmp_path / "lm.safetensors")
    loaded, info = load_gpt2(f"path:{tmp_path / 'lm.safetensors'}", TINY_GPT2)
    assert (info.provider, info.pretrained) == ("path", True)
    assert torch.equal(loaded.h[1].attn.c_attn.weight, source.h[1].attn.c_attn.weight)
