"""Backbone test helpers: every family shrunk to one narrow layer so its tests stay cheap."""

from __future__ import annotations

import torch

# Config overrides that make each family a 16-wide, one-layer ViT of the same architecture.
SMALL_CONFIGS = {
    "tiny": {},
    "dinov2-s": dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2),
    "clip-b16": dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32),
    "deit-b": dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32),
    "videomae-s": dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32),
}


def random_tokens(backbone, batch: int = 3, length: int = 5, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, length, backbone.width, generator=generator)
