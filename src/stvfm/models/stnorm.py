"""ST-Norm: spatial and temporal normalisation (Deng, Chen, Jiang, Song, Tsang; KDD 2021).

Every grid cell is a node. Each layer of a WaveNet-style stack of gated, dilated, causal
convolutions along time reads its input concatenated with two normalised copies: spatial
normalisation (per time step, across all nodes) removes what the whole city shares and
keeps the local, high-frequency part; temporal normalisation (per node, across the batch
and time, with running statistics like batch norm) removes each node's own level and
keeps its short-term fluctuation. Skip connections feed a two-layer 1x1 output head that
emits all ``Q`` future steps at once.

Departures from the paper:
- The history is zero-padded on the left to the stack's receptive field so the last
  output step sees every input step (the paper's inputs are longer than 6 steps).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from stvfm.models.base import Forecaster, ModelConfig
from stvfm.models.registry import register_model
from stvfm.shape import ForecastShape


@dataclass(frozen=True)
class STNormConfig(ModelConfig):
    #: Channels of the residual stream and of the gated dilated convolutions.
    channels: int = 32
    #: Channels of the skip connections and of the output head.
    skip_channels: int = 64
    #: Repeats of the dilation cycle.
    blocks: int = 1
    #: Layers per block; layer ``i`` of a block is dilated by ``2**i``.
    layers_per_block: int = 3
    #: Kernel size of the dilated temporal convolutions.
    kernel: int = 2
    #: Use spatial normalisation.
    spatial_norm: bool = True
    #: Use temporal normalisation.
    temporal_norm: bool = True

    positive = ("channels", "skip_channels", "blocks", "layers_per_block", "kernel")


class SpatialNorm(nn.Module):
    """Normalise each (sample, channel, step) across nodes: what the city shares is removed."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, N, T)
        normed = (x - x.mean(2, keepdim=True)) / torch.sqrt(x.var(2, keepdim=True, unbiased=False) + 1e-5)
        return normed * self.weight[:, None, None] + self.bias[:, None, None]


class TemporalNorm(nn.Module):
    """Normalise each (channel, node) across batch and time: each node's own level is removed.

    Running statistics are kept for evaluation, as in batch normalisation.
    """

    def __init__(self, nodes: int, channels: int, momentum: float = 0.1):
        super().__init__()
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(channels, nodes))
        self.bias = nn.Parameter(torch.zeros(channels, nodes))
        self.register_buffer("running_mean", torch.zeros(channels, nodes))
        self.register_buffer("running_var", torch.ones(channels, nodes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, N, T)
        x = x.float()  # statistics and running buffers stay fp32 under bf16 autocast, as batch norm's do
        if self.training:
            mean = x.mean(dim=(0, 3))
            var = x.var(dim=(0, 3), unbiased=False)
            with torch.no_grad():
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(var, self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        normed = (x - mean[None, :, :, None]) / torch.sqrt(var[None, :, :, None] + 1e-5)
        return normed * self.weight[None, :, :, None] + self.bias[None, :, :, None]


class GatedNormLayer(nn.Module):
    """One WaveNet layer reading ``[x, SNorm(x), TNorm(x)]``; returns (residual out, skip)."""

    def __init__(self, nodes: int, config: STNormConfig, dilation: int):
        super().__init__()
        self.spatial_norm = SpatialNorm(config.channels) if config.spatial_norm else None
        self.temporal_norm = TemporalNorm(nodes, config.channels) if config.temporal_norm else None
        views = 1 + config.spatial_norm + config.temporal_norm
        kernel = (1, config.kernel)
        self.filter_conv = nn.Conv2d(views * config.channels, config.channels, kernel, dilation=(1, dilation))
        self.gate_conv = nn.Conv2d(views * config.channels, config.channels, kernel, dilation=(1, dilation))
        self.residual_conv = nn.Conv2d(config.channels, config.channels, 1)
        self.skip_conv = nn.Conv2d(config.channels, config.skip_channels, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        views = [x]
        if self.spatial_norm is not None:
            views.append(self.spatial_norm(x))
        if self.temporal_norm is not None:
            views.append(self.temporal_norm(x))
        stacked = torch.cat(views, dim=1)
        gated = torch.tanh(self.filter_conv(stacked)) * torch.sigmoid(self.gate_conv(stacked))
        out = self.residual_conv(gated) + x[..., -gated.shape[-1]:]
        return out, self.skip_conv(gated)


@register_model("stnorm", STNormConfig)
class STNorm(Forecaster):
    """ST-Norm (KDD 2021): spatial/temporal normalisation in a gated dilated causal conv stack."""

    def __init__(self, shape: ForecastShape, config: STNormConfig):
        super().__init__(shape, config)
        nodes = shape.height * shape.width
        dilations = [2**layer for _ in range(config.blocks) for layer in range(config.layers_per_block)]
        self.receptive_field = 1 + (config.kernel - 1) * sum(dilations)
        self.start_conv = nn.Conv2d(shape.channels, config.channels, 1)
        self.layers = nn.ModuleList(GatedNormLayer(nodes, config, dilation) for dilation in dilations)
        self.head = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(config.skip_channels, config.skip_channels, 1),
            nn.ReLU(),
            nn.Conv2d(config.skip_channels, shape.horizon * shape.channels, 1),
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        history = batch["x"]
        batch_size, steps, channels, height, width = history.shape
        nodes = history.reshape(batch_size, steps, channels, height * width).permute(0, 2, 3, 1)  # (B, C, N, T)
        nodes = F.pad(nodes, (max(self.receptive_field - steps, 0), 0))
        x = self.start_conv(nodes)
        skip = 0
        for layer in self.layers:
            x, layer_skip = layer(x)
            skip = layer_skip[..., -1:] + skip
        out = self.head(skip)  # (B, Q*C, N, 1)
        forecast = out.reshape(batch_size, self.shape.horizon, channels, height, width)
        return {"forecast": forecast}
