"""SimVP: Gao, Tan, Wu and Li, "SimVP: Simpler yet Better Video Prediction", CVPR 2022.

Every frame goes through a shared strided-conv encoder; the latent frames are stacked along
channels and an Inception-style U-Net of grouped convolutions (the translator) maps the P
history latents to Q future latents at once; a shared transposed decoder with a skip
connection from the first encoder layer maps them back to frames. No recurrence, MSE loss.

The spatial encoder/decoder and ``EncoderTranslatorDecoder`` are shared with TAU (``tau.py``).

Departures from the paper:
- Layers follow the maintained OpenSTL code rather than the first release: GroupNorm(2) +
  SiLU in the encoder/decoder, up-sampling by sub-pixel convolution, skip added (not
  concatenated) before the last decoder layer.
- The paper predicts as many frames as it reads; here the translator maps P*hid latent
  channels to Q*hid, and when P != Q a 1x1 convolution mixes the P skip features into Q.
- Grids the down-sampling does not divide are padded with zeros and cropped back.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from stvfm.errors import ConfigError
from stvfm.models.base import Forecaster, ModelConfig
from stvfm.models.patching import pad_grid
from stvfm.models.registry import register_model
from stvfm.shape import ForecastShape


@dataclass(frozen=True)
class SimVPConfig(ModelConfig):
    #: Channels of the per-frame spatial encoder/decoder (paper: 64; 32 fits 16x8..32x32 grids).
    hidden_spatial: int = 32
    #: Channels inside the temporal translator (paper: 256-512 for 64x64 video).
    hidden_temporal: int = 128
    #: Encoder (and decoder) conv layers; every second one halves the grid (2 -> one halving).
    spatial_layers: int = 2
    #: Inception blocks on each side of the translator's U-Net (paper: 8 total ~ 4 per side).
    temporal_layers: int = 4
    #: Kernel of the encoder/decoder convolutions.
    spatial_kernel: int = 3
    #: Kernel sizes of the parallel grouped convolutions inside each Inception block.
    inception_kernels: tuple[int, ...] = (3, 5, 7, 11)
    #: Groups of the grouped convolutions (falls back to 1 where channels do not divide).
    inception_groups: int = 8

    positive = ("hidden_spatial", "hidden_temporal", "spatial_layers", "temporal_layers", "spatial_kernel", "inception_groups")


class ConvNormAct(nn.Module):
    """Conv + GroupNorm + SiLU, optionally halving (stride 2) or doubling (sub-pixel) the grid."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, downsample: bool = False, upsample: bool = False):
        super().__init__()
        stride = 2 if downsample else 1
        padding = (kernel - stride + 1) // 2
        if upsample:
            self.conv = nn.Sequential(nn.Conv2d(in_channels, out_channels * 4, kernel, padding=padding), nn.PixelShuffle(2))
        else:
            self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding)
        self.norm = nn.GroupNorm(2, out_channels)
        self.act = nn.SiLU()

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(frames)))


def _halvings(layers: int) -> list[bool]:
    """Which encoder layers stride by 2: every second one, starting with the second (as SimVP)."""
    return [index % 2 == 1 for index in range(layers)]


def downsampling_factor(spatial_layers: int) -> int:
    return 2 ** sum(_halvings(spatial_layers))


class SpatialEncoder(nn.Module):
    """Per-frame conv encoder; also returns its first layer's output for the decoder's skip."""

    def __init__(self, in_channels: int, hidden: int, layers: int, kernel: int):
        super().__init__()
        halvings = _halvings(layers)
        self.layers = nn.ModuleList(
            ConvNormAct(in_channels if index == 0 else hidden, hidden, kernel, downsample=halve)
            for index, halve in enumerate(halvings)
        )

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.layers[0](frames)
        latent = skip
        for layer in self.layers[1:]:
            latent = layer(latent)
        return latent, skip


class SpatialDecoder(nn.Module):
    """Mirror of ``SpatialEncoder``; the encoder's first-layer features join before the last layer."""

    def __init__(self, hidden: int, out_channels: int, layers: int, kernel: int):
        super().__init__()
        doublings = list(reversed(_halvings(layers)))
        self.layers = nn.ModuleList(ConvNormAct(hidden, hidden, kernel, upsample=double) for double in doublings)
        self.readout = nn.Conv2d(hidden, out_channels, 1)

    def forward(self, latent: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            latent = layer(latent)
        return self.readout(self.layers[-1](latent + skip))


class EncoderTranslatorDecoder(nn.Module):
    """SimVP's frame: encode frames, translate P stacked latents to Q, decode; pads and crops the grid.

    ``translator`` maps (B, P*hidden, h, w) to (B, Q*hidden, h, w).
    """

    def __init__(self, shape: ForecastShape, hidden: int, layers: int, kernel: int, translator: nn.Module):
        super().__init__()
        if layers < 1:
            raise ConfigError(f"spatial_layers must be at least 1, got {layers}")
        self.shape = shape
        self.hidden = hidden
        self.pad_multiple = downsampling_factor(layers)
        self.encoder = SpatialEncoder(shape.channels, hidden, layers, kernel)
        self.translator = translator
        self.decoder = SpatialDecoder(hidden, shape.channels, layers, kernel)
        self.skip_mixer = (
            nn.Identity()
            if shape.history == shape.horizon
            else nn.Conv2d(shape.history * hidden, shape.horizon * hidden, 1)
        )

    def forward(self, history: torch.Tensor) -> torch.Tensor:
        batch, steps, channels, height, width = history.shape
        frames = pad_grid(history, self.pad_multiple, self.shape.scaled_zero)
        padded_h, padded_w = frames.shape[-2:]
        latent, skip = self.encoder(frames.reshape(batch * steps, channels, padded_h, padded_w))
        latent_h, latent_w = latent.shape[-2:]
        future = self.translator(latent.reshape(batch, steps * self.hidden, latent_h, latent_w))
        future = future.reshape(batch * self.shape.horizon, self.hidden, latent_h, latent_w)
        skip = self.skip_mixer(skip.reshape(batch, steps * self.hidden, padded_h, padded_w))
        skip = skip.reshape(batch * self.shape.horizon, self.hidden, padded_h, padded_w)
        frames_out = self.decoder(future, skip)
        frames_out = frames_out.reshape(batch, self.shape.horizon, channels, padded_h, padded_w)
        return frames_out[..., :height, :width]


class GroupedConvNormAct(nn.Module):
    """Grouped conv + GroupNorm + LeakyReLU, one branch of an Inception block."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, groups: int):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            groups = 1
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, groups=groups)
        self.norm = nn.GroupNorm(groups, out_channels)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(features)))


class InceptionBlock(nn.Module):
    """1x1 bottleneck, then parallel grouped convs of several kernel sizes, summed."""

    def __init__(self, in_channels: int, bottleneck: int, out_channels: int, kernels: tuple[int, ...], groups: int):
        super().__init__()
        self.bottleneck = nn.Conv2d(in_channels, bottleneck, 1)
        self.branches = nn.ModuleList(GroupedConvNormAct(bottleneck, out_channels, kernel, groups) for kernel in kernels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        features = self.bottleneck(features)
        return sum(branch(features) for branch in self.branches)


class InceptionTranslator(nn.Module):
    """SimVP's translator: a U-Net of Inception blocks over the time-stacked latent channels."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int, layers: int, kernels: tuple[int, ...], groups: int):
        super().__init__()
        if layers < 2:
            raise ConfigError(f"temporal_layers must be at least 2 for SimVP's U-Net translator, got {layers}")

        def block(block_in: int, block_out: int) -> InceptionBlock:
            return InceptionBlock(block_in, hidden // 2, block_out, kernels, groups)

        self.down = nn.ModuleList(block(in_channels if index == 0 else hidden, hidden) for index in range(layers))
        self.up = nn.ModuleList(
            [block(hidden, hidden)]
            + [block(2 * hidden, out_channels if index == layers - 1 else hidden) for index in range(1, layers)]
        )

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        skips = []
        for index, layer in enumerate(self.down):
            latent = layer(latent)
            if index < len(self.down) - 1:
                skips.append(latent)
        latent = self.up[0](latent)
        for layer in self.up[1:]:
            latent = layer(torch.cat([latent, skips.pop()], dim=1))
        return latent


@register_model("simvp", SimVPConfig)
class SimVP(Forecaster):
    """SimVP (CVPR 2022): conv encoder, Inception U-Net translator over stacked frames, conv decoder."""

    def __init__(self, shape: ForecastShape, config: SimVPConfig):
        super().__init__(shape, config)
        translator = InceptionTranslator(
            shape.history * config.hidden_spatial,
            config.hidden_temporal,
            shape.horizon * config.hidden_spatial,
            config.temporal_layers,
            tuple(config.inception_kernels),
            config.inception_groups,
        )
        self.network = EncoderTranslatorDecoder(
            shape, config.hidden_spatial, config.spatial_layers, config.spatial_kernel, translator
        )
        # Channels-last weights make every conv run channels-last: a training step at the recipe's size is 1.37x
        # faster at one AVX512 thread, 1.14x under AVX2 caps (scripts/bench-memory-format.py), with the same
        # forecasts up to rounding (2e-6). TAU measured 0.78x and the other conv baselines 0.91-1.13x: unchanged.
        self.network.to(memory_format=torch.channels_last)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"forecast": self.network(batch["x"])}
