"""MC-STL: mask- and contrast-enhanced spatio-temporal learning for urban flow prediction
(Zhang, Gong, Zhang, Wu, Zhang, Dong; CIKM 2023).

A spatio-temporal Transformer encoder reads the history as tokens, one per (step, patch of
cells), alternating attention along time (per region) and across regions (per step). A
masking module hides a random share of the tokens behind a learnable mask token, giving two
masked views of each sample. Two self-supervised tasks shape the encoder: the mask task
reconstructs the hidden tokens' values, and the contrastive task (InfoNCE) pulls together
the two views' representations of the same region and pushes apart those of other regions.
A linear head on the unmasked encoding forecasts all ``Q`` steps.

Training follows the paper's two stages when ``pretrain_steps > 0``: the first
``pretrain_steps`` training steps optimise the mask and contrastive tasks alone (the
self-supervised pre-training; the forecast head gets no gradient), then the forecaster
trains with both tasks kept as auxiliary terms (``reconstruction_weight``,
``contrast_weight``). The step count lives in a buffer, so it survives checkpoints and
resumes. The self-supervised terms are computed only in training mode, so validation
loss is the forecast MSE alone.

Departures from the paper:
- ``pretrain_steps`` defaults to 0 (one joint loss from the start): under the short CPU
  budgets of this project a separate stage took steps away from the forecaster.
- The paper's graph of region significance from inter-regional attention weights and its
  global-local cross-attention are left out; negatives of the contrastive task are the
  other regions of the same sample (keeps memory linear in batch size).
- Reads only the recent history, no periodic inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from stvfm.errors import ConfigError
from stvfm.models.base import Forecaster, ModelConfig
from stvfm.models.patching import pad_grid, padded_size, patchify, unpatchify
from stvfm.models.registry import register_model
from stvfm.shape import ForecastShape


@dataclass(frozen=True)
class MCSTLConfig(ModelConfig):
    #: Width of the token embeddings.
    hidden: int = 64
    #: Attention heads.
    heads: int = 4
    #: Encoder blocks (each one temporal and one spatial attention layer).
    layers: int = 2
    #: Side of the square patch of cells that forms one token.
    patch: int = 2
    #: Share of tokens hidden in each masked view.
    mask_ratio: float = 0.3
    #: Weight of the masked-token reconstruction term in the loss.
    reconstruction_weight: float = 0.1
    #: Weight of the InfoNCE term in the loss.
    contrast_weight: float = 0.1
    #: Softmax temperature of InfoNCE.
    temperature: float = 0.5
    #: Dropout inside the attention layers.
    dropout: float = 0.1
    #: Training steps of self-supervised pre-training (mask + contrastive tasks only) before the forecaster trains.
    pretrain_steps: int = 0

    positive = ("hidden", "heads", "layers", "patch", "temperature")
    non_negative = ("reconstruction_weight", "contrast_weight")
    fractions = ("dropout",)

    def validate(self) -> None:
        super().validate()
        if not 0.0 < self.mask_ratio < 1.0:
            raise ConfigError("mcstl mask_ratio must lie strictly between 0 and 1")
        if self.pretrain_steps < 0:
            raise ConfigError("mcstl pretrain_steps must be >= 0")


def _attention_layer(config: MCSTLConfig) -> nn.TransformerEncoderLayer:
    return nn.TransformerEncoderLayer(
        config.hidden, config.heads, 2 * config.hidden, config.dropout, batch_first=True, norm_first=True
    )


class SpatioTemporalBlock(nn.Module):
    """Attention along time for each region, then across regions for each step."""

    def __init__(self, config: MCSTLConfig):
        super().__init__()
        self.temporal = _attention_layer(config)
        self.spatial = _attention_layer(config)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (B, T, N, D)
        batch_size, steps, regions, width = tokens.shape
        along_time = tokens.transpose(1, 2).reshape(batch_size * regions, steps, width)
        tokens = self.temporal(along_time).reshape(batch_size, regions, steps, width).transpose(1, 2)
        across_space = self.spatial(tokens.reshape(batch_size * steps, regions, width))
        return across_space.reshape(batch_size, steps, regions, width)


def info_nce(first: torch.Tensor, second: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE over (B, N, D) region embeddings; positives share sample and region."""
    first, second = F.normalize(first, dim=-1), F.normalize(second, dim=-1)
    logits = first @ second.transpose(1, 2) / temperature  # (B, N, N)
    targets = torch.arange(logits.shape[-1], device=logits.device).expand(logits.shape[0], -1)
    return 0.5 * (F.cross_entropy(logits.transpose(1, 2), targets) + F.cross_entropy(logits, targets))


@register_model("mcstl", MCSTLConfig)
class MCSTL(Forecaster):
    """MC-STL (CIKM 2023): ST Transformer with masked-view reconstruction and contrastive terms."""

    def __init__(self, shape: ForecastShape, config: MCSTLConfig):
        super().__init__(shape, config)
        padded_h, padded_w = padded_size(shape.height, shape.width, config.patch)
        self.padded = (padded_h, padded_w)
        regions = (padded_h // config.patch) * (padded_w // config.patch)
        token_values = shape.channels * config.patch**2
        self.embed = nn.Linear(token_values, config.hidden)
        self.mask_token = nn.Parameter(torch.zeros(config.hidden))
        self.time_position = nn.Parameter(torch.randn(shape.history, 1, config.hidden) * 0.02)
        self.region_position = nn.Parameter(torch.randn(1, regions, config.hidden) * 0.02)
        self.blocks = nn.ModuleList(SpatioTemporalBlock(config) for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.hidden)
        self.forecast_head = nn.Linear(shape.history * config.hidden, shape.horizon * token_values)
        self.reconstruction_head = nn.Linear(config.hidden, token_values)
        self.projection = nn.Sequential(
            nn.Linear(config.hidden, config.hidden), nn.ReLU(), nn.Linear(config.hidden, config.hidden)
        )
        self.register_buffer("pretrained_steps", torch.zeros((), dtype=torch.long))

    def _encode(self, embedded: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is not None:
            embedded = torch.where(mask[..., None], self.mask_token, embedded)
        tokens = embedded + self.time_position + self.region_position
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)

    def _masked_view(self, values: torch.Tensor, embedded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode one random masking; return (reconstruction error on hidden tokens, region embeddings)."""
        mask = torch.rand(embedded.shape[:3], device=embedded.device) < self.config.mask_ratio
        encoded = self._encode(embedded, mask)
        errors = ((self.reconstruction_head(encoded) - values) ** 2).mean(-1)
        reconstruction = (errors * mask).sum() / mask.sum().clamp(min=1)
        return reconstruction, self.projection(encoded.mean(dim=1))

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        history = batch["x"]
        batch_size, steps, channels, height, width = history.shape
        patch = self.config.patch
        values = patchify(pad_grid(history, patch, self.shape.scaled_zero), patch)  # (B, P, N, C*p*p)
        embedded = self.embed(values)
        encoded = self._encode(embedded)
        regions = encoded.shape[2]
        flat = encoded.transpose(1, 2).reshape(batch_size, regions, -1)
        future = self.forecast_head(flat).reshape(batch_size, regions, self.shape.horizon, -1).transpose(1, 2)
        forecast = unpatchify(future, patch, channels, *self.padded)[..., :height, :width]
        outputs = {"forecast": forecast}
        if self.training:
            first_error, first_regions = self._masked_view(values, embedded)
            second_error, second_regions = self._masked_view(values, embedded)
            outputs["masked_reconstruction"] = 0.5 * (first_error + second_error)
            outputs["contrastive"] = info_nce(first_regions, second_regions, self.config.temperature)
        return outputs

    def loss(self, batch: dict[str, torch.Tensor], outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        terms = super().loss(batch, outputs)
        if "contrastive" in outputs:
            terms["masked_reconstruction"] = outputs["masked_reconstruction"]
            terms["contrastive"] = outputs["contrastive"]
            # stage 1: self-supervised tasks only (the buffer is read only when there is a stage 1: a device sync)
            if self.config.pretrain_steps and self.pretrained_steps < self.config.pretrain_steps:
                self.pretrained_steps += 1
                terms["loss"] = outputs["masked_reconstruction"] + outputs["contrastive"]
                return terms
            terms["loss"] = (
                terms["mse_st"]
                + self.config.reconstruction_weight * outputs["masked_reconstruction"]
                + self.config.contrast_weight * outputs["contrastive"]
            )
        return terms
