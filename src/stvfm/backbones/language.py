"""GPT-2 for ST-LLM, loaded by the same weight providers and named by the same ``WeightsInfo`` as the ViTs.

Unlike a ViT family it adapts to any GPT-2 size, and its ``gpt2_overrides`` (dropout, a tiny
GPT-2 for tests) apply to hub models and folders too. It is not a ``VisionBackbone``, so it
is not in the ViT registry.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import GPT2Config, GPT2Model

from stvfm.backbones.base import PretrainedFamily, WeightsInfo
from stvfm.backbones.weights import load_weights

#: State-dict keys of causal-mask buffers that older checkpoints carry and GPT2Model does not.
_BUFFER_SUFFIXES = (".attn.bias", ".attn.masked_bias")


class Gpt2Family(PretrainedFamily):
    """GPT-2 base model; every weight counts, since ST-LLM fine-tunes its norms and attention."""

    name = "gpt2"
    display_name = "GPT-2"
    model_class = GPT2Model
    config_class = GPT2Config
    default_config: dict[str, Any] = {}
    default_weights = "hub:gpt2"
    hub_id = "gpt2"
    unused_prefixes = ()
    pretrained_takes_overrides = True
    fixed_size = False

    def weights_label(self, provider: str, source: str) -> str:
        """``GPT-2 (random-init)``, else the spec itself (``GPT-2 (hub:gpt2)``), as ST-LLM runs always said."""
        return f"{self.display_name} ({'random-init' if provider == 'random' else f'{provider}:{source}'})"

    def adapt_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A ``GPT2LMHeadModel`` file loads too: its ``transformer.`` prefix, head and mask buffers go."""
        state = {key.removeprefix("transformer."): value for key, value in state.items()}
        return {key: value for key, value in state.items()
                if key != "lm_head.weight" and not key.endswith(_BUFFER_SUFFIXES)}


def load_gpt2(weights: str, overrides: dict[str, Any]) -> tuple[GPT2Model, WeightsInfo]:
    """The GPT-2 that ``weights`` names (``hub:NAME``, ``path:FILE_OR_DIR`` or ``random``) and its record."""
    return load_weights(Gpt2Family(), weights, overrides)
