"""Heads that turn per-frame VFM features (B, P, N_s, D_VFM) into Q future frames of patches."""

from __future__ import annotations

import torch
from torch import nn

from stvfm.models.layers import FastCPUDropout, FullPrecisionLinear
from stvfm.models.stvfm.temporal import CalendarEmbedding, TemporalTransformer


class TemporalDecoder(nn.Module):
    """Per-branch temporal Transformer decoder (paper section 3.5) -> (B, Q, N_s, C*p*p).

    Each location's P history features, projected to D_T, are followed by Q learnable
    future queries; step and calendar embeddings of both windows tell every position
    when it is, and the Q future outputs are read out as patch values.
    """

    def __init__(self, vfm_dim: int, temporal_dim: int, patch_features: int, history: int, horizon: int,
                 heads: int, layers: int, dropout: float, slots_per_day: int, calendar_init_std: float,
                 calendar: bool = True):
        super().__init__()
        self.project = nn.Linear(vfm_dim, temporal_dim)
        self.future = nn.Parameter(nn.init.trunc_normal_(torch.empty(horizon, 1, temporal_dim), std=0.02))
        self.step = nn.Parameter(nn.init.trunc_normal_(torch.empty(history + horizon, temporal_dim), std=0.02))
        self.calendar = CalendarEmbedding(slots_per_day, temporal_dim, calendar_init_std) if calendar else None
        self.transformer = TemporalTransformer(temporal_dim, heads, layers, dropout)
        self.head = FullPrecisionLinear(temporal_dim, patch_features)  # forecasts are not rounded to bf16

    def forward(self, features: torch.Tensor, x_time: torch.Tensor, y_time: torch.Tensor) -> torch.Tensor:
        history = self.project(features)
        batch, steps, locations, dim = history.shape
        future = self.future.expand(batch, -1, locations, -1)
        sequence = torch.cat([history, future], dim=1)
        when = self.step if self.calendar is None else self.step + self.calendar(torch.cat([x_time, y_time], dim=1))
        sequence = sequence + when[..., None, :]
        encoded = self.transformer(sequence.transpose(1, 2).reshape(batch * locations, -1, dim))
        horizon = self.future.shape[0]
        patches = self.head(encoded[:, steps:])
        return patches.view(batch, locations, horizon, -1).transpose(1, 2)


class FrameMLPHead(nn.Module):
    """Ablation #1's head: an MLP from the P frames' concatenated features of a location
    to its Q future patches, with no temporal model, to show what the VFM alone gives."""

    def __init__(self, vfm_dim: int, hidden: int, patch_features: int, history: int, horizon: int, dropout: float):
        super().__init__()
        self.horizon = horizon
        self.mlp = nn.Sequential(
            nn.Linear(history * vfm_dim, hidden), nn.GELU(), FastCPUDropout(dropout),
            FullPrecisionLinear(hidden, horizon * patch_features),
        )

    def forward(self, features: torch.Tensor, x_time: torch.Tensor, y_time: torch.Tensor) -> torch.Tensor:
        batch, steps, locations, dim = features.shape
        patches = self.mlp(features.transpose(1, 2).reshape(batch, locations, steps * dim))
        return patches.view(batch, locations, self.horizon, -1).transpose(1, 2)
