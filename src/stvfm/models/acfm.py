"""ACFM: Attentive Crowd Flow Machines (Liu, Wang, Li, Cheng, Lin; ACM Multimedia 2018).

An attentive crowd flow machine is two ConvLSTMs in series joined by a spatial attention
map: the first ConvLSTM summarises the sequence so far, a small convolutional net turns its
hidden state and the current frame's features into per-cell weights, and the second ConvLSTM
reads the re-weighted features. One machine runs over the sequential representation (the
recent history frames), another over the periodic representation (the same time of day on
previous days, from the ``daily`` context, oldest first); their final hidden states are
concatenated and fused by convolutions into the forecast, squashed by tanh because the
flows are scaled to [-1, 1].

Departures from the paper:
- Multi-step: the fusion emits all ``Q`` future frames at once (the paper predicts the next
  step only); each periodic step is the ``Q`` frames of one earlier day stacked as channels.
- The per-frame feature extractor is two 3x3 convolutions instead of a ResNet, and there
  are no external factors (weather, holidays).
- The attention weights pass through a sigmoid per cell rather than a softmax over the city.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from stvfm.errors import ConfigError
from stvfm.models.base import Forecaster, ModelConfig
from stvfm.models.registry import register_model
from stvfm.shape import ForecastShape


@dataclass(frozen=True)
class ACFMConfig(ModelConfig):
    #: Previous days read by the periodic branch (the data must be built with as many).
    daily_context: int = 3
    #: Channels of the frame features and of both ConvLSTMs.
    hidden: int = 32
    #: Kernel size of the ConvLSTM convolutions.
    kernel: int = 3

    positive = ("hidden", "kernel")

    def validate(self) -> None:
        super().validate()
        if self.daily_context < 1:
            raise ConfigError("acfm needs daily_context >= 1 (its periodic branch reads earlier days)")


class ConvLSTMCell(nn.Module):
    """A convolutional LSTM cell (Shi et al. 2015)."""

    def __init__(self, in_channels: int, hidden: int, kernel: int):
        super().__init__()
        self.gates = nn.Conv2d(in_channels + hidden, 4 * hidden, kernel, padding=kernel // 2)

    def forward(self, x, hidden, cell):
        i, f, g, o = self.gates(torch.cat([x, hidden], dim=1)).chunk(4, dim=1)
        cell = torch.sigmoid(f + 1.0) * cell + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(cell), cell


class AttentiveCrowdFlowMachine(nn.Module):
    """ConvLSTM -> spatial attention over the features -> ConvLSTM, over one input sequence."""

    def __init__(self, in_channels: int, hidden: int, kernel: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 3, padding=1), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(),
        )
        self.first = ConvLSTMCell(hidden, hidden, kernel)
        self.attention = nn.Sequential(nn.Conv2d(2 * hidden, hidden, 1), nn.Tanh(), nn.Conv2d(hidden, 1, 1))
        self.second = ConvLSTMCell(hidden, hidden, kernel)
        self.hidden = hidden

    def forward(self, sequence: torch.Tensor) -> torch.Tensor:
        """(B, T, C', H, W) -> the second ConvLSTM's last hidden state (B, hidden, H, W)."""
        batch_size, steps, _, height, width = sequence.shape
        features = self.features(sequence.flatten(0, 1)).unflatten(0, (batch_size, steps))
        zeros = sequence.new_zeros(batch_size, self.hidden, height, width)
        first_h, first_c, second_h, second_c = zeros, zeros, zeros, zeros
        for step in range(steps):
            frame = features[:, step]
            first_h, first_c = self.first(frame, first_h, first_c)
            weights = torch.sigmoid(self.attention(torch.cat([first_h, frame], dim=1)))
            second_h, second_c = self.second(frame * weights, second_h, second_c)
        return second_h


@register_model("acfm", ACFMConfig)
class ACFM(Forecaster):
    """ACFM (ACM MM 2018): attentive ConvLSTMs over recent and daily-periodic frames, fused."""

    def __init__(self, shape: ForecastShape, config: ACFMConfig):
        super().__init__(shape, config)
        if shape.daily_context != config.daily_context:
            raise ConfigError(
                f"acfm is configured for daily_context={config.daily_context} but the data has "
                f"daily_context={shape.daily_context}; build the data with the model's context"
            )
        self.daily_context = config.daily_context
        self.sequential = AttentiveCrowdFlowMachine(shape.channels, config.hidden, config.kernel)
        self.periodic = AttentiveCrowdFlowMachine(shape.horizon * shape.channels, config.hidden, config.kernel)
        self.fusion = nn.Sequential(
            nn.Conv2d(2 * config.hidden, config.hidden, 3, padding=1), nn.ReLU(),
            nn.Conv2d(config.hidden, shape.horizon * shape.channels, 1),
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        history = batch["x"]
        batch_size, _, channels, height, width = history.shape
        # daily[:, d] is d+1 days earlier: reverse so the periodic sequence runs oldest first.
        periodic = batch["daily"].flip(1).flatten(2, 3)  # (B, D, Q*C, H, W)
        fused = torch.cat([self.sequential(history), self.periodic(periodic)], dim=1)
        forecast = torch.tanh(self.fusion(fused))
        return {"forecast": forecast.reshape(batch_size, self.shape.horizon, channels, height, width)}
