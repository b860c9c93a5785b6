"""Which attention kernel runs where: the one rule the VFM backbones and ST-VFM's own attention share.

Imports from stvfm: none.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: On CPU, attention over at most this many keys runs eagerly (matmul, softmax, matmul) rather
#: than through SDPA's flash kernel, whose backward is slow for short sequences: for ViT-S fwd+bwd
#: in bf16 on the 2-core dev box eager was 16-30% faster from 32 to 384 tokens and still 9% at
#: 768 (docs/benchmark.md). Longer sequences keep SDPA, whose memory does not grow with the
#: square of the length. Used by the VFM backbones and ST-VFM's cross-prompt attention.
EAGER_ATTENTION_MAX_TOKENS = 1024


def eager_attention_wins(query: torch.Tensor, key: torch.Tensor) -> bool:
    return query.device.type == "cpu" and key.shape[-2] <= EAGER_ATTENTION_MAX_TOKENS


def attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Softmax attention over (..., length, head_dim) tensors, by the faster path for the device
    and length (see ``EAGER_ATTENTION_MAX_TOKENS``); both compute the same function."""
    if not eager_attention_wins(query, key):
        return F.scaled_dot_product_attention(query, key, value)
    scores = torch.matmul(query, key.transpose(-2, -1)) * query.shape[-1] ** -0.5
    return torch.matmul(scores.softmax(dim=-1, dtype=torch.float32).to(value.dtype), value)
