"""Post-VFM reprogramming (paper section 3.4): bilateral cross-prompt coordination.

Each branch's VFM tokens of a frame attend to themselves and to prompts made from the
other branch's tokens of the same frame: the flow tells the ST branch what moves, the ST
branch tells the flow branch where the stable structure is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stvfm.attention import attention
from stvfm.models.layers import FastCPUDropout


class CrossPromptAttention(nn.Module):
    """Multi-head self-attention whose keys/values are extended by prompt tokens.

    Prompts get their own key/value projections and share ONE softmax with the regular keys
    (eq. 10), so the branch decides per query how much to listen to the other branch. No
    dropout on the attention weights: it would force SDPA's unfused path, which holds the
    whole (N_s x 2 N_s) matrix per head and frame (3 GB and 100 s per step on a 128x128 grid).
    Short sequences on CPU run eagerly instead (``stvfm.attention``): same function, faster there.
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.prompt_kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, tokens: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        batch, length, dim = tokens.shape
        head_dim = dim // self.heads
        query, key, value = self.qkv(tokens).view(batch, length, 3, self.heads, head_dim).permute(2, 0, 3, 1, 4)
        prompt_key, prompt_value = (
            self.prompt_kv(prompts).view(batch, prompts.shape[1], 2, self.heads, head_dim).permute(2, 0, 3, 1, 4)
        )
        mixed = attention(query, torch.cat([key, prompt_key], dim=2), torch.cat([value, prompt_value], dim=2))
        return self.out(mixed.transpose(1, 2).reshape(batch, length, dim))


class PromptedLayer(nn.Module):
    """Pre-norm residual block of one branch: prompted attention, then an MLP."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.prompt_norm = nn.LayerNorm(dim)
        self.attention = CrossPromptAttention(dim, heads)
        self.mlp_norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.GELU(), FastCPUDropout(dropout), nn.Linear(4 * dim, dim), FastCPUDropout(dropout),
        )

    def forward(self, tokens: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        tokens = tokens + self.attention(self.norm(tokens), self.prompt_norm(prompts))
        return tokens + self.mlp(self.mlp_norm(tokens))


class CrossPromptBlock(nn.Module):
    """One coordination layer over (frames, N_s, D) tokens of both branches.

    Both branches update from the layer's inputs (symmetric, not one after the other).
    ``prompt_tokens=0`` uses every token of the other branch's frame as a prompt; ``L_p > 0``
    average-pools them to L_p prompts to cut the cost on large grids.
    """

    def __init__(self, dim: int, heads: int, prompt_tokens: int, dropout: float):
        super().__init__()
        self.prompt_tokens = prompt_tokens
        self.st = PromptedLayer(dim, heads, dropout)
        self.flow = PromptedLayer(dim, heads, dropout)

    def prompts(self, tokens: torch.Tensor) -> torch.Tensor:
        if not self.prompt_tokens:
            return tokens
        return F.adaptive_avg_pool1d(tokens.transpose(1, 2), self.prompt_tokens).transpose(1, 2)

    def forward(self, st: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.st(st, self.prompts(flow)), self.flow(flow, self.prompts(st))
