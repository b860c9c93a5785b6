"""Pre-VFM reprogramming (paper section 3.3): turn grid patches into tokens a frozen VFM can read."""

from __future__ import annotations

import torch
from torch import nn

from stvfm.models.layers import FullPrecisionLinear
from stvfm.models.stvfm.temporal import CalendarEmbedding, TemporalTransformer


class TemporalTokenAdapter(nn.Module):
    """Patch tokens (B, P, N_s, C*p*p) of one branch -> VFM tokens (B, P, N_s, D_VFM).

    Tokenizer projection to D_T (eq. 5), optional temporal context encoder across the P
    frames of each location (eq. 6), token adaptation D_T -> D_VFM (eq. 7) and a learnable
    spatial position embedding shared by all frames (eq. 8), because the VFM's own one was
    learnt for 224x224 images, not small city grids. ``temporal_dim=None`` gives ablation
    #1's plain per-frame linear embedding; ``encoder_layers=0`` gives ablation #2's. A video
    backbone sees all frames in one sequence, so ``video=True`` adds a frame embedding.
    """

    def __init__(self, patch_features: int, num_tokens: int, history: int, vfm_dim: int,
                 temporal_dim: int | None, encoder_layers: int, heads: int, dropout: float,
                 slots_per_day: int, video: bool, calendar_init_std: float, calendar: bool = True):
        super().__init__()
        # the layer that reads raw grid values runs in fp32 under autocast (see FullPrecisionLinear)
        self.project = nn.Identity() if temporal_dim is None else FullPrecisionLinear(patch_features, temporal_dim)
        self.encoder = None
        if encoder_layers:
            self.step = nn.Parameter(nn.init.trunc_normal_(torch.empty(history, temporal_dim), std=0.02))
            self.calendar = CalendarEmbedding(slots_per_day, temporal_dim, calendar_init_std) if calendar else None
            self.encoder = TemporalTransformer(temporal_dim, heads, encoder_layers, dropout)
        self.adapt = (FullPrecisionLinear(patch_features, vfm_dim) if temporal_dim is None
                      else nn.Linear(temporal_dim, vfm_dim))
        self.position = nn.Parameter(nn.init.trunc_normal_(torch.empty(num_tokens, vfm_dim), std=0.02))
        self.frame = nn.Parameter(nn.init.trunc_normal_(torch.empty(history, 1, vfm_dim), std=0.02)) if video else None

    def forward(self, patches: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        tokens = self.project(patches)
        if self.encoder is not None:
            batch, steps, locations, dim = tokens.shape
            when = self.step if self.calendar is None else self.step + self.calendar(times)
            tokens = tokens + when[..., None, :]
            sequences = self.encoder(tokens.transpose(1, 2).reshape(batch * locations, steps, dim))
            tokens = sequences.view(batch, locations, steps, dim).transpose(1, 2)
        tokens = self.adapt(tokens) + self.position
        return tokens if self.frame is None else tokens + self.frame
