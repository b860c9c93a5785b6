"""ST-ResNet: Zhang, Zheng, Qi, "Deep Spatio-Temporal Residual Networks for Citywide Crowd
Flows Prediction", AAAI 2017.

Three branches of the same shape look at three temporal ranges: closeness (the recent
frames), period (the same time on previous days) and trend (the same time in previous
weeks). Each branch stacks its frames as image channels and passes them through a
convolution, residual units of two 3x3 convolutions, and a last convolution. The branch
outputs are fused cell by cell with learned parametric matrices (each cell learns how
much it depends on each range) and squashed by tanh into the scaled range [-1, 1].

Departures from the paper:
- Multi-step: the paper forecasts one step; here every branch outputs all Q future steps
  at once (Q*C channels) and the parametric matrices have Q*C planes, so each step has its
  own fusion weights.
- Closeness reads all P history frames (the paper's l_c = 3); period reads the frames of
  the Q future steps on each of the ``daily_context`` previous days (``batch["daily"]``)
  and trend on each of the ``weekly_context`` previous weeks (``batch["weekly"]``); a
  branch whose context is 0 is left out.
- The external component (weather, holidays, metadata fused before tanh) is left out:
  the datasets here carry no external features, only the time of each step.
- Batch normalisation before each ReLU of the residual units is on by default (the paper's
  code makes it optional). Without it, most scaled targets sit at -1 (empty cells), which
  tanh reaches only at -infinity: Adam drives the fused output to about -400 within a few
  hundred steps, tanh saturates and the model forecasts 0 everywhere (bikenyc1 ch0, 320
  steps of batch 8, lr 5e-4: test RMSE 22.76 without, 8.82 with, seed 0).
  ``output_activation="none"`` drops the final tanh (same run: 8.08 instead of 8.82).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from stvfm.errors import ConfigError
from stvfm.models.base import Forecaster, ModelConfig
from stvfm.models.registry import register_model
from stvfm.shape import ForecastShape


@dataclass(frozen=True)
class STResNetConfig(ModelConfig):
    """The paper's BikeNYC (16x8) setting."""

    FORMER_DEFAULTS: ClassVar[dict[str, Any]] = {"batch_norm": False}  # runs recorded before the option existed

    daily_context: int = 2  # previous days read by the period branch (0 = no period branch)
    weekly_context: int = 1  # previous weeks read by the trend branch (0 = no trend branch)
    filters: int = 64  # channels of every hidden convolution
    residual_units: int = 4  # residual units per branch (paper: 4 on BikeNYC, 12 on TaxiBJ)
    batch_norm: bool = True  # batch norm before each ReLU of a residual unit (the paper code's `bn`)
    output_activation: str = "tanh"  # "tanh" (paper) or "none" (linear fused output)

    non_negative = ("daily_context", "weekly_context")
    positive = ("filters", "residual_units")

    def validate(self) -> None:
        super().validate()
        if self.output_activation not in ("tanh", "none"):
            raise ConfigError(f"stresnet output_activation must be 'tanh' or 'none', got {self.output_activation!r}")


class ResidualUnit(nn.Module):
    """ReLU-conv-ReLU-conv with an identity skip, the pre-activation unit of the paper."""

    def __init__(self, filters: int, batch_norm: bool):
        super().__init__()
        def norm_relu_conv() -> list[nn.Module]:
            norm = [nn.BatchNorm2d(filters)] if batch_norm else []  # no placeholder: keeps older checkpoints' keys
            return [*norm, nn.ReLU(), nn.Conv2d(filters, filters, kernel_size=3, padding=1)]
        self.body = nn.Sequential(*norm_relu_conv(), *norm_relu_conv())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features + self.body(features)


class TemporalRangeBranch(nn.Module):
    """One of closeness / period / trend: frames stacked as channels -> future frames."""

    def __init__(self, in_channels: int, out_channels: int, filters: int, residual_units: int, batch_norm: bool):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, filters, kernel_size=3, padding=1),
            *[ResidualUnit(filters, batch_norm) for _ in range(residual_units)],
            nn.ReLU(),
            nn.Conv2d(filters, out_channels, kernel_size=3, padding=1),
        )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.layers(frames.flatten(1, -3))


@register_model("stresnet", STResNetConfig)
class STResNet(Forecaster):
    """ST-ResNet (AAAI 2017): closeness, period and trend residual CNNs fused by parametric matrices."""

    def __init__(self, shape: ForecastShape, config: STResNetConfig):
        super().__init__(shape, config)
        if (shape.daily_context, shape.weekly_context) != (config.daily_context, config.weekly_context):
            raise ConfigError(
                f"stresnet is configured for {config.daily_context} day(s) / {config.weekly_context} week(s) "
                f"of context but the data provides {shape.daily_context} / {shape.weekly_context}"
            )
        self.daily_context = config.daily_context
        self.weekly_context = config.weekly_context
        future_channels = shape.horizon * shape.channels
        in_channels = {
            "x": shape.history * shape.channels,
            "daily": config.daily_context * future_channels,
            "weekly": config.weekly_context * future_channels,
        }
        self.branches = nn.ModuleDict(
            {
                key: TemporalRangeBranch(channels, future_channels, config.filters, config.residual_units, config.batch_norm)
                for key, channels in in_channels.items()
                if channels > 0
            }
        )
        # Uniform [0, 1) like the paper's code: each cell starts with its own mix of ranges.
        self.fusion_weights = nn.ParameterDict(
            {key: nn.Parameter(torch.rand(future_channels, shape.height, shape.width)) for key in self.branches}
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        fused = sum(self.fusion_weights[key] * branch(batch[key]) for key, branch in self.branches.items())
        batch_size, _, channels, height, width = batch["x"].shape
        if self.config.output_activation == "tanh":
            fused = torch.tanh(fused)
        future = fused.reshape(batch_size, self.shape.horizon, channels, height, width)
        return {"forecast": future}
