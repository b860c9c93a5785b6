"""TAU: Tan, Gao, Wu, Xu, Li and Li, "Temporal Attention Unit: Towards Efficient Spatiotemporal
Predictive Learning", CVPR 2023.

SimVP's encoder and decoder (imported from ``simvp.py``) around a translator of Temporal
Attention Units over the time-stacked latent channels. Each unit multiplies a static
attention map (large-kernel convolution decomposed into a depthwise conv, a dilated depthwise
conv and a 1x1 conv: intra-frame) by a dynamic channel attention (squeeze-and-excitation:
inter-frame), inside a MetaFormer block (BatchNorm, layer scale, conv MLP, stochastic depth).
Training adds the differential divergence regularisation: the KL divergence between the
softmax of the predicted and of the true frame differences, so that the forecast moves the
way the data moves, not only lands near it.

Departures from the paper:
- The divergence is averaged over every element (as in the authors' OpenSTL code, which keeps
  its scale independent of the grid size) rather than summed over each frame's cells.
- The translator maps P*hid latent channels to Q*hid (the paper has P = Q); see ``simvp.py``
  for the skip connection when P != Q and for padding of grids the encoder does not divide.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from stvfm.errors import ConfigError
from stvfm.models.base import Forecaster, ModelConfig, observed_mean
from stvfm.models.registry import register_model
from stvfm.models.simvp import EncoderTranslatorDecoder
from stvfm.shape import ForecastShape


@dataclass(frozen=True)
class TAUConfig(ModelConfig):
    #: Channels of the per-frame spatial encoder/decoder (SimVP's).
    hidden_spatial: int = 32
    #: Channels inside the translator (paper: 256 for TaxiBJ-sized inputs).
    hidden_temporal: int = 128
    #: Encoder (and decoder) conv layers; every second one halves the grid.
    spatial_layers: int = 2
    #: Temporal Attention Units in the translator (paper: 8; 4 suffices on small grids).
    temporal_layers: int = 4
    #: Kernel of the encoder/decoder convolutions.
    spatial_kernel: int = 3
    #: Receptive field of the static attention's decomposed large kernel (paper: 21).
    attention_kernel: int = 21
    #: Dilation of the depthwise dilated conv in the decomposition (paper: 3).
    attention_dilation: int = 3
    #: Channel reduction of the dynamic (squeeze-and-excitation) attention.
    attention_reduction: int = 16
    #: Hidden width of each unit's conv MLP relative to its channels.
    mlp_ratio: float = 4.0
    #: Largest stochastic-depth rate, reached by the last unit (linear from 0.01).
    drop_path: float = 0.1
    #: Weight alpha of the differential divergence regularisation in the loss (paper: 0.1).
    divergence_weight: float = 0.1
    #: Softmax temperature of the differential divergence (authors' code: 0.1).
    divergence_temperature: float = 0.1

    positive = ("hidden_spatial", "hidden_temporal", "spatial_layers", "temporal_layers", "spatial_kernel",
                "attention_kernel", "attention_dilation", "attention_reduction", "mlp_ratio", "divergence_temperature")
    non_negative = ("divergence_weight",)
    fractions = ("drop_path",)


class TemporalAttention(nn.Module):
    """Static attention (decomposed large kernel) times dynamic channel attention, times the input."""

    def __init__(self, channels: int, kernel: int, dilation: int, reduction: int):
        super().__init__()
        local_kernel = 2 * dilation - 1
        dilated_kernel = kernel // dilation + ((kernel // dilation) % 2 - 1)
        self.depthwise = nn.Conv2d(channels, channels, local_kernel, padding=local_kernel // 2, groups=channels)
        self.depthwise_dilated = nn.Conv2d(
            channels, channels, dilated_kernel, padding=dilation * (dilated_kernel - 1) // 2, groups=channels, dilation=dilation
        )
        self.pointwise = nn.Conv2d(channels, channels, 1)
        squeezed = max(channels // reduction, 4)
        self.channel_gate = nn.Sequential(
            nn.Linear(channels, squeezed, bias=False), nn.ReLU(), nn.Linear(squeezed, channels, bias=False), nn.Sigmoid()
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        static = self.pointwise(self.depthwise_dilated(self.depthwise(features)))
        dynamic = self.channel_gate(features.mean(dim=(2, 3)))[:, :, None, None]
        return dynamic * static * features


class TemporalAttentionMixer(nn.Module):
    """1x1 projection, GELU, temporal attention, 1x1 projection, with a residual."""

    def __init__(self, channels: int, kernel: int, dilation: int, reduction: int):
        super().__init__()
        self.project_in = nn.Conv2d(channels, channels, 1)
        self.act = nn.GELU()
        self.attention = TemporalAttention(channels, kernel, dilation, reduction)
        self.project_out = nn.Conv2d(channels, channels, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features + self.project_out(self.attention(self.act(self.project_in(features))))


class ConvMLP(nn.Module):
    """1x1 expand, 3x3 depthwise, GELU, 1x1 contract: the unit's channel mixer."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.expand = nn.Conv2d(channels, hidden, 1)
        self.depthwise = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = nn.GELU()
        self.contract = nn.Conv2d(hidden, channels, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.contract(self.act(self.depthwise(self.expand(features))))


def drop_path(features: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth: drop a residual branch for whole samples, rescaling the survivors."""
    if rate == 0.0 or not training:
        return features
    keep = 1.0 - rate
    mask = features.new_empty((features.shape[0],) + (1,) * (features.dim() - 1)).bernoulli_(keep)
    return features * mask / keep


class TemporalAttentionUnit(nn.Module):
    """MetaFormer block with temporal attention as token mixer; a 1x1 conv changes width if asked."""

    def __init__(self, in_channels: int, out_channels: int, config: TAUConfig, drop_rate: float, layer_scale: float = 1e-2):
        super().__init__()
        self.drop_rate = drop_rate
        self.norm_attention = nn.BatchNorm2d(in_channels)
        self.attention = TemporalAttentionMixer(
            in_channels, config.attention_kernel, config.attention_dilation, config.attention_reduction
        )
        self.norm_mlp = nn.BatchNorm2d(in_channels)
        self.mlp = ConvMLP(in_channels, int(in_channels * config.mlp_ratio))
        self.scale_attention = nn.Parameter(torch.full((in_channels, 1, 1), layer_scale))
        self.scale_mlp = nn.Parameter(torch.full((in_channels, 1, 1), layer_scale))
        self.resize = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        attended = self.scale_attention * self.attention(self.norm_attention(features))
        features = features + drop_path(attended, self.drop_rate, self.training)
        mixed = self.scale_mlp * self.mlp(self.norm_mlp(features))
        features = features + drop_path(mixed, self.drop_rate, self.training)
        return self.resize(features)


class TemporalAttentionTranslator(nn.Sequential):
    """A stack of units: P*hid channels in, ``hidden_temporal`` inside, Q*hid out."""

    def __init__(self, in_channels: int, out_channels: int, config: TAUConfig):
        layers = config.temporal_layers
        if layers < 2:
            raise ConfigError(f"temporal_layers must be at least 2 for TAU, got {layers}")
        # linearly rising drop-path rates, as OpenSTL (plain floats: no tensor on whatever device builds the model)
        rates = ([1e-2 + (config.drop_path - 1e-2) * i / (layers - 1) for i in range(layers)]
                 if config.drop_path > 0 else [0.0] * layers)
        widths = [in_channels] + [config.hidden_temporal] * (layers - 1) + [out_channels]
        super().__init__(*(TemporalAttentionUnit(widths[i], widths[i + 1], config, rates[i]) for i in range(layers)))


def differential_divergence(forecast: torch.Tensor, target: torch.Tensor, temperature: float, eps: float = 1e-12) -> torch.Tensor:
    """KL(softmax(diff forecast / T) || softmax(diff target / T)) over each frame difference, per-element mean."""
    batch, steps = forecast.shape[:2]
    if steps < 2:
        return forecast.new_zeros(())
    forecast_moves = (forecast[:, 1:] - forecast[:, :-1]).reshape(batch, steps - 1, -1)
    target_moves = (target[:, 1:] - target[:, :-1]).reshape(batch, steps - 1, -1)
    forecast_dist = F.softmax(forecast_moves / temperature, dim=-1)
    target_dist = F.softmax(target_moves / temperature, dim=-1)
    return torch.mean(forecast_dist * torch.log(forecast_dist / (target_dist + eps) + eps))


@register_model("tau", TAUConfig)
class TAU(Forecaster):
    """TAU (CVPR 2023): SimVP with Temporal Attention Units and a differential divergence loss."""

    def __init__(self, shape: ForecastShape, config: TAUConfig):
        super().__init__(shape, config)
        translator = TemporalAttentionTranslator(
            shape.history * config.hidden_spatial, shape.horizon * config.hidden_spatial, config
        )
        self.network = EncoderTranslatorDecoder(
            shape, config.hidden_spatial, config.spatial_layers, config.spatial_kernel, translator
        )

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"forecast": self.network(batch["x"])}

    def loss(self, batch: dict[str, torch.Tensor], outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        forecast, target = outputs["forecast"].float(), batch["y"].float()
        mse = observed_mean((forecast - target) ** 2, batch.get("y_observed"))
        divergence = differential_divergence(forecast, target, self.config.divergence_temperature)
        return {"loss": mse + self.config.divergence_weight * divergence, "mse_st": mse, "divergence": divergence}
