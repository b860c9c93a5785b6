"""PatchTST: Nie, Nguyen, Sinthong and Kalagnanam, "A Time Series is Worth 64 Words: Long-term
Forecasting with Transformers", ICLR 2023.

Channel independence: every grid cell x channel is a separate univariate series, and all of
them share one Transformer. Each series is normalised by RevIN (its own mean and standard
deviation over the history, with a learnable affine per series), cut into overlapping
patches along time, each patch embedded linearly with a learned positional embedding, passed
through a Transformer encoder with BatchNorm, and the flattened patch features are mapped by
one linear head to the Q future values, then de-normalised. The grid is never seen.

Departures from the paper:
- With only P = 6 history steps the patches are tiny: length 2, stride 1 by default (the
  paper uses 16/8 over 336-512 steps); the series is padded at the end by repeating its last
  value ``stride`` times, as in the paper, giving 6 patches.
- The encoder is the vanilla post-norm Transformer the paper describes; the authors' code
  also adds attention scores of the previous layer (residual attention), not done here.
- No self-supervised pre-training (the paper's supervised variant).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from stvfm.errors import ConfigError
from stvfm.models.base import Forecaster, ModelConfig
from stvfm.models.registry import register_model
from stvfm.shape import ForecastShape


@dataclass(frozen=True)
class PatchTSTConfig(ModelConfig):
    #: Time steps per patch (paper: 16 over 336+ steps; 2 over the protocol's 6).
    patch_length: int = 2
    #: Step between patch starts (paper: 8; 1 keeps 6 tokens from 6 steps).
    patch_stride: int = 1
    #: Width of the Transformer (paper: 128).
    width: int = 64
    #: Attention heads (paper: 16).
    heads: int = 4
    #: Encoder layers (paper: 3).
    layers: int = 3
    #: Hidden width of the feed-forward block (paper: 256).
    feedforward: int = 128
    #: Dropout inside the encoder (paper: 0.2).
    dropout: float = 0.1
    #: Dropout before the flatten head (paper: 0 for the supervised head).
    head_dropout: float = 0.0
    #: Learnable affine of RevIN, one scale and shift per series (paper: on).
    revin_affine: bool = True

    positive = ("patch_length", "patch_stride", "width", "heads", "layers", "feedforward")
    fractions = ("dropout", "head_dropout")


class BatchNormOverTokens(nn.Module):
    """BatchNorm1d over the width of (N, tokens, width) features, as PatchTST normalises."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.BatchNorm1d(width)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.norm(tokens.transpose(1, 2)).transpose(1, 2)


class EncoderLayer(nn.Module):
    """Post-norm Transformer layer with BatchNorm and a GELU feed-forward block."""

    def __init__(self, width: int, heads: int, feedforward: int, dropout: float):
        super().__init__()
        self.attention = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.norm_attention = BatchNormOverTokens(width)
        self.feedforward = nn.Sequential(
            nn.Linear(width, feedforward), nn.GELU(), nn.Dropout(dropout), nn.Linear(feedforward, width)
        )
        self.norm_feedforward = BatchNormOverTokens(width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        attended, _ = self.attention(tokens, tokens, tokens, need_weights=False)
        tokens = self.norm_attention(tokens + self.dropout(attended))
        return self.norm_feedforward(tokens + self.dropout(self.feedforward(tokens)))


def patch_count(history: int, length: int, stride: int) -> int:
    """Patches from a series of ``history`` steps padded at the end by ``stride`` steps."""
    return (history + stride - length) // stride + 1


@register_model("patchtst", PatchTSTConfig)
class PatchTST(Forecaster):
    """PatchTST (ICLR 2023): channel-independent Transformer over time patches of every cell's series."""

    def __init__(self, shape: ForecastShape, config: PatchTSTConfig):
        super().__init__(shape, config)
        if not 1 <= config.patch_length <= shape.history or config.patch_stride < 1:
            raise ConfigError(
                f"patchtst needs 1 <= patch_length <= history ({shape.history}) and patch_stride >= 1, "
                f"got {config.patch_length} and {config.patch_stride}"
            )
        series = shape.channels * shape.height * shape.width
        patches = patch_count(shape.history, config.patch_length, config.patch_stride)
        self.revin_scale = nn.Parameter(torch.ones(series), requires_grad=config.revin_affine)
        self.revin_shift = nn.Parameter(torch.zeros(series), requires_grad=config.revin_affine)
        self.patch_embedding = nn.Linear(config.patch_length, config.width)
        self.position = nn.Parameter(torch.empty(patches, config.width).uniform_(-0.02, 0.02))
        # (patches, length) positions in the padded series: patching as one gather, which ONNX exports over a dynamic
        # window count (Tensor.unfold has no such export); not a weight, so kept out of the state dict
        starts = torch.arange(patches)[:, None] * config.patch_stride
        self.register_buffer("patch_index", starts + torch.arange(config.patch_length), persistent=False)
        self.embedding_dropout = nn.Dropout(config.dropout)
        self.encoder = nn.Sequential(
            *(EncoderLayer(config.width, config.heads, config.feedforward, config.dropout) for _ in range(config.layers))
        )
        self.head = nn.Sequential(
            nn.Flatten(start_dim=1), nn.Dropout(config.head_dropout), nn.Linear(patches * config.width, shape.horizon)
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        history = batch["x"]
        batch_size, steps = history.shape[:2]
        series = history.reshape(batch_size, steps, -1).transpose(1, 2)  # (B, N, P)
        mean = series.mean(dim=-1, keepdim=True)
        std = torch.sqrt(series.var(dim=-1, keepdim=True, correction=0) + 1e-5)
        normalised = (series - mean) / std * self.revin_scale[:, None] + self.revin_shift[:, None]

        padded = F.pad(normalised, (0, self.config.patch_stride), mode="replicate")
        patches = padded[..., self.patch_index]  # (B, N, patches, length)
        tokens = self.embedding_dropout(self.patch_embedding(patches.flatten(0, 1)) + self.position)
        predicted = self.head(self.encoder(tokens)).unflatten(0, (batch_size, -1))  # (B, N, Q)

        predicted = (predicted - self.revin_shift[:, None]) / (self.revin_scale[:, None] + 1e-10) * std + mean
        forecast = predicted.transpose(1, 2).reshape(batch_size, self.shape.horizon, *history.shape[2:])
        return {"forecast": forecast}
