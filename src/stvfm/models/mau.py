"""MAU: Motion-Aware Unit (Chang, Zhang, Wang, Ma, Ye, Xinguang, Gao; NeurIPS 2021).

Frames are encoded by strided convolutions, run through a stack of motion-aware units and
decoded by transposed convolutions with encoder skips. Each unit keeps a temporal state T
and a spatial state S. Its attention module scores the previous ``tau`` spatial states
against the current one and uses the weights to mix the previous ``tau`` temporal states
into a motion trend, which a gate fuses with the current temporal state (a wider temporal
receptive field). Its fusion module then exchanges information between the temporal
(motion) and spatial (appearance) streams through two gates. After the history the model
feeds back its own predictions.

Departures from the paper:
- Frames may be folded by ``patch`` (space-to-depth, as the authors' code does) after
  padding the grid to a multiple of ``patch * 2**downsamples``; the forecast is cropped back.
- By default training feeds back the model's own predictions and scores the forecast steps
  only; scheduled sampling (``scheduled_sampling_epochs`` or ``_iterations``) and ``history_loss``
  give the authors' objective (the recipe's, its sampling counted in epochs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from stvfm.models.recurrent import FrameRecurrentConfig, FrameRecurrentForecaster, same_conv
from stvfm.models.registry import register_model
from stvfm.shape import ForecastShape


@dataclass(frozen=True)
class MAUConfig(FrameRecurrentConfig):
    #: Stacked motion-aware units.
    num_layers: int = 3
    #: Channels of the encoder, the decoder and every unit state.
    hidden: int = 32
    #: Kernel size of the unit convolutions.
    kernel: int = 3
    #: Number of previous states the attention module looks back over.
    tau: int = 5
    #: Stride-2 encoder levels (the paper's spatial reduction ``sr_size = 2**downsamples``).
    downsamples: int = 1
    #: Space-to-depth factor applied to frames before the encoder.
    patch: int = 1

    positive = ("num_layers", "hidden", "kernel", "tau", "patch")
    non_negative = ("downsamples", *FrameRecurrentConfig.non_negative)


class MotionAwareUnit(nn.Module):
    """One MAU: attention over the last ``tau`` states, then appearance/motion fusion."""

    def __init__(self, hidden: int, kernel: int):
        super().__init__()
        self.spatial_query = same_conv(hidden, hidden, kernel)
        self.temporal_gate = same_conv(hidden, hidden, kernel)
        self.temporal_conv = same_conv(hidden, 3 * hidden, kernel)
        self.spatial_conv = same_conv(hidden, 3 * hidden, kernel)

    def forward(self, temporal, spatial, temporal_history: list[torch.Tensor], spatial_history: list[torch.Tensor]):
        query = self.spatial_query(spatial)
        scale = math.sqrt(query[0].numel())
        scores = torch.stack([(past * query).sum(dim=(1, 2, 3)) for past in spatial_history], dim=1) / scale
        weights = torch.softmax(scores, dim=1)[:, :, None, None, None]
        motion_trend = (weights * torch.stack(temporal_history, dim=1)).sum(dim=1)
        gate = torch.sigmoid(self.temporal_gate(temporal))
        temporal = gate * temporal + (1 - gate) * motion_trend

        t_gate, t_to_t, t_to_s = self.temporal_conv(temporal).chunk(3, dim=1)
        s_gate, s_to_t, s_to_s = self.spatial_conv(spatial).chunk(3, dim=1)
        t_gate, s_gate = torch.sigmoid(t_gate), torch.sigmoid(s_gate)
        new_temporal = t_gate * t_to_t + (1 - t_gate) * s_to_t
        new_spatial = s_gate * s_to_s + (1 - s_gate) * t_to_s
        return new_temporal, new_spatial


@register_model("mau", MAUConfig)
class MAU(FrameRecurrentForecaster):
    """MAU (NeurIPS 2021): motion-aware units with attention over past states."""

    def __init__(self, shape: ForecastShape, config: MAUConfig):
        super().__init__(shape, config)
        frame_channels = shape.channels * config.patch**2
        hidden = config.hidden
        self.stem = nn.Sequential(same_conv(frame_channels, hidden, 3), nn.LeakyReLU(0.2))
        self.encoders = nn.ModuleList(
            nn.Sequential(nn.Conv2d(hidden, hidden, 3, stride=2, padding=1), nn.LeakyReLU(0.2))
            for _ in range(config.downsamples)
        )
        self.units = nn.ModuleList(MotionAwareUnit(hidden, config.kernel) for _ in range(config.num_layers))
        self.decoders = nn.ModuleList(
            nn.Sequential(nn.ConvTranspose2d(hidden, hidden, 4, stride=2, padding=1), nn.LeakyReLU(0.2))
            for _ in range(config.downsamples)
        )
        self.head = nn.Conv2d(hidden, frame_channels, 1)

    def _encode(self, frame: torch.Tensor) -> list[torch.Tensor]:
        features = [self.stem(frame)]
        for encoder in self.encoders:
            features.append(encoder(features[-1]))
        return features

    def _decode(self, state: torch.Tensor, features: list[torch.Tensor]) -> torch.Tensor:
        out = state
        for level, decoder in enumerate(self.decoders):
            out = decoder(out) + features[-2 - level]
        return self.head(out)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        multiple = self.config.patch * 2**self.config.downsamples
        zeros = self.zero_state(batch, self.config.hidden, multiple)
        layers, tau = self.config.num_layers, self.config.tau
        temporal = [zeros] * layers
        temporal_history = [[zeros] * tau for _ in range(layers)]
        spatial_history = [[zeros] * tau for _ in range(layers)]

        def advance(frame: torch.Tensor, step: int) -> torch.Tensor:
            features = self._encode(frame)
            spatial = features[-1]
            for index, unit in enumerate(self.units):
                new_temporal, new_spatial = unit(
                    temporal[index], spatial, temporal_history[index], spatial_history[index]
                )
                temporal_history[index] = (temporal_history[index] + [new_temporal])[-tau:]
                spatial_history[index] = (spatial_history[index] + [spatial])[-tau:]
                temporal[index] = new_temporal
                spatial = new_spatial
            return self._decode(spatial, features)

        return self.roll(batch, self.config.patch, advance, multiple)
