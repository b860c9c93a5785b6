"""Backbone test helpers: every family shrunk to one narrow layer so its tests stay cheap."""

from __future__ import annotations

import torch

from stvfm.testing import SMALL_BACKBONE_CONFIGS as SMALL_CONFIGS  # noqa: F401


def random_tokens(backbone, batch: int = 3, length: int = 5, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, length, backbone.width, generator=generator)
