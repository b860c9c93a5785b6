"""STGSP: spatio-temporal forecasting with global and positional information
(Zhao, Gao, Wang; WSDM 2022).

A semantic flow encoder (per-frame convolutions) turns every frame into per-cell features.
For each cell, the closeness frames (recent history) and the periodic frames (the same
future times on earlier days and weeks) become one token sequence; each token carries a
positional encoding of its true time offset from the first forecast step, so attention
knows how far back and at which period a frame lies. Global temporal attention
(a Transformer encoder over the whole sequence, every frame attending to every frame) mixes
them, with one learnable query token per future step. A convolutional fusion head turns the
query outputs back into frames, mixing neighbouring cells.

Departures from the paper:
- One temporal scale of attention (the paper also attends over coarser multi-step scales)
  and no external factors; future steps are read from query tokens (the paper predicts the
  next step only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from stvfm.errors import ConfigError
from stvfm.models.base import Forecaster, ModelConfig
from stvfm.models.registry import register_model
from stvfm.shape import ForecastShape


@dataclass(frozen=True)
class STGSPConfig(ModelConfig):
    #: Previous days of the forecast window read as periodic frames (0 = none).
    daily_context: int = 3
    #: Previous weeks of the forecast window read as trend frames (0 = none).
    weekly_context: int = 1
    #: Width of the frame features and of the temporal attention.
    hidden: int = 64
    #: Attention heads.
    heads: int = 4
    #: Temporal attention layers.
    layers: int = 2
    #: Dropout inside the attention layers.
    dropout: float = 0.1

    non_negative = ("daily_context", "weekly_context")
    positive = ("hidden", "heads", "layers")
    fractions = ("dropout",)

    def validate(self) -> None:
        super().validate()
        if self.hidden % 2 or self.hidden % self.heads:
            raise ConfigError("stgsp hidden must be even and divisible by heads")


def sinusoidal_encoding(offsets: torch.Tensor, width: int) -> torch.Tensor:
    """Transformer positional encoding of (possibly negative, far apart) time offsets."""
    frequencies = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10000.0) / width))
    angles = offsets.float()[:, None] * frequencies[None, :]
    encoding = torch.zeros(len(offsets), width)
    encoding[:, 0::2] = torch.sin(angles)
    encoding[:, 1::2] = torch.cos(angles[:, : width // 2])
    return encoding


def _check_context(name: str, shape: ForecastShape, daily: int, weekly: int) -> None:
    if (shape.daily_context, shape.weekly_context) != (daily, weekly):
        raise ConfigError(
            f"{name} is configured for daily_context={daily}, weekly_context={weekly} but the data has "
            f"daily_context={shape.daily_context}, weekly_context={shape.weekly_context}; "
            "build the data with the model's context"
        )


@register_model("stgsp", STGSPConfig)
class STGSP(Forecaster):
    """STGSP (WSDM 2022): global temporal attention with positional encoding over recent and periodic frames."""

    def __init__(self, shape: ForecastShape, config: STGSPConfig):
        super().__init__(shape, config)
        _check_context("stgsp", shape, config.daily_context, config.weekly_context)
        self.daily_context = config.daily_context
        self.weekly_context = config.weekly_context
        self.encoder = nn.Sequential(
            nn.Conv2d(shape.channels, config.hidden, 3, padding=1), nn.ReLU(),
            nn.Conv2d(config.hidden, config.hidden, 3, padding=1),
        )
        horizon, day = shape.horizon, shape.slots_per_day
        steps = torch.arange(horizon)
        offsets = [torch.arange(-shape.history, 0)]
        kinds = [torch.zeros(shape.history, dtype=torch.long)]
        for days_back in range(1, config.daily_context + 1):
            offsets.append(steps - days_back * day)
            kinds.append(torch.full((horizon,), 1))
        for weeks_back in range(1, config.weekly_context + 1):
            offsets.append(steps - weeks_back * 7 * day)
            kinds.append(torch.full((horizon,), 2))
        offsets.append(steps)
        kinds.append(torch.full((horizon,), 3))
        self.register_buffer("position", sinusoidal_encoding(torch.cat(offsets), config.hidden), persistent=False)
        self.register_buffer("kind", torch.cat(kinds), persistent=False)
        #: closeness, daily, weekly, query
        self.kind_embedding = nn.Embedding(4, config.hidden)
        self.queries = nn.Parameter(torch.zeros(horizon, config.hidden))
        layer = nn.TransformerEncoderLayer(
            config.hidden, config.heads, 2 * config.hidden, config.dropout, batch_first=True, norm_first=True
        )
        self.attention = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.hidden)
        self.fusion = nn.Sequential(
            nn.Conv2d(config.hidden, config.hidden, 3, padding=1), nn.ReLU(),
            nn.Conv2d(config.hidden, shape.channels, 1),
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        history = batch["x"]
        batch_size, _, channels, height, width = history.shape
        frames = [history]
        if self.daily_context:
            frames.append(batch["daily"].flatten(1, 2))
        if self.weekly_context:
            frames.append(batch["weekly"].flatten(1, 2))
        frames = torch.cat(frames, dim=1)  # (B, T, C, H, W)
        steps = frames.shape[1]
        features = self.encoder(frames.flatten(0, 1)).unflatten(0, (batch_size, steps))
        tokens = features.permute(0, 3, 4, 1, 2).reshape(batch_size * height * width, steps, -1)
        queries = self.queries.expand(tokens.shape[0], -1, -1)
        tokens = torch.cat([tokens, queries], dim=1) + self.position + self.kind_embedding(self.kind)
        encoded = self.norm(self.attention(tokens))[:, steps:]  # (B*H*W, Q, hidden)
        encoded = encoded.reshape(batch_size, height, width, self.shape.horizon, -1).permute(0, 3, 4, 1, 2)
        forecast = self.fusion(encoded.flatten(0, 1)).unflatten(0, (batch_size, self.shape.horizon))
        return {"forecast": forecast}
