"""Bottleneck adapters inside a frozen backbone's blocks (Houlsby et al. 2019; paper ablation #4).

Each adapter rewrites the attention output of one block just before the residual add:
``h -> h + up(gelu(down(h)))``. It attaches by a forward hook on the module that produces
that output, so the Hugging Face block, its code and its state-dict names stay untouched
(weights load the same with or without adapters). The up-projection starts at zero, so at
initialisation the adapted backbone computes exactly what the frozen one does.
"""

from __future__ import annotations

import torch
from torch import nn

from stvfm.backbones.base import VisionBackbone
from stvfm.errors import ConfigError


class BottleneckAdapter(nn.Module):
    """``h + up(gelu(down(h)))`` with a ``ratio * width`` bottleneck."""

    def __init__(self, width: int, ratio: float = 0.25):
        super().__init__()
        bottleneck = max(1, round(width * ratio))
        self.down = nn.Linear(width, bottleneck)
        self.activation = nn.GELU()
        self.up = nn.Linear(bottleneck, width)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.up(self.activation(self.down(hidden)))

    def adapt_output(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        """Forward hook for the attention-output module. A bound method, not a closure, so a
        deep copy of the backbone hooks the copied adapter rather than this one."""
        return self(output)


def add_adapters(backbone: VisionBackbone, ratio: float = 0.25) -> nn.ModuleList:
    """Put one trainable adapter in each block; returns them (also kept as ``backbone.adapters``)."""
    if not ratio > 0:
        raise ConfigError(f"adapter ratio must be positive, got {ratio}")
    if isinstance(getattr(backbone, "adapters", None), nn.ModuleList):
        raise ConfigError(f"backbone {backbone.name} already has adapters")
    if backbone.attention_output_path is None:
        raise ConfigError(f"backbone {backbone.name} does not say where its attention output is; no adapters")
    reference = next(backbone.parameters())
    adapters = nn.ModuleList(BottleneckAdapter(backbone.width, ratio) for _ in range(backbone.depth))
    adapters.to(device=reference.device, dtype=reference.dtype)
    for block, adapter in zip(backbone.blocks, adapters, strict=True):
        block.get_submodule(backbone.attention_output_path).register_forward_hook(adapter.adapt_output)
    backbone.adapters = adapters
    return adapters
