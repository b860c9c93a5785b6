"""Temporal building blocks shared by ST-VFM's token adapter and decoders.

The frozen VFM only mixes tokens within a frame; everything that happens along time is
done by these small per-location Transformers of width D_T.
"""

from __future__ import annotations

import torch
from torch import nn

from stvfm.models.layers import use_fast_cpu_dropout


class CalendarEmbedding(nn.Module):
    """Weekday + slot-of-day embedding of ``x_time`` / ``y_time`` (B, T, 2) -> (B, T, dim).

    Urban series are dominated by daily and weekly cycles, so each step's calendar position
    is told to the temporal Transformers explicitly. The tables start at ``init_std``
    (ST-VFM's ``calendar_init_std``): at PyTorch's std 1 they outweigh the data-dependent part
    of every token early in training.
    """

    def __init__(self, slots_per_day: int, dim: int, init_std: float):
        super().__init__()
        self.weekday = nn.Embedding(7, dim)
        self.slot = nn.Embedding(slots_per_day, dim)
        with torch.no_grad():  # scaling PyTorch's N(0, 1) draw keeps the random stream of the default init
            for table in (self.weekday, self.slot):
                table.weight.mul_(init_std)

    def forward(self, times: torch.Tensor) -> torch.Tensor:
        return self.weekday(times[..., 0]) + self.slot(times[..., 1])


class TemporalTransformer(nn.Module):
    """Pre-norm Transformer encoder over the time axis of (N, T, dim) sequences.

    Called with every spatial location folded into the batch axis, so the same weights
    model time at every location (paper eq. 6).
    """

    def __init__(self, dim: int, heads: int, layers: int, dropout: float):
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            dim, heads, dim_feedforward=4 * dim, dropout=dropout, activation="gelu",
            batch_first=True, norm_first=True,
        )
        encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(dim), enable_nested_tensor=False)
        self.encoder = use_fast_cpu_dropout(encoder)

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        return self.encoder(sequences)
