"""UniST: Yuan, Ding, Feng, Jin, Li, "UniST: A Prompt-Empowered Universal Model for Urban
Spatio-Temporal Prediction", KDD 2024.

A masked spatio-temporal Transformer in the manner of a video MAE. The history and the
future frames are cut into space-time tokens (spatial patch x temporal patch); in the
forecasting ("temporal") masking mode every future token is masked, the encoder reads
only the history tokens, and the decoder receives the encoded history followed by one
learned mask token per future token and reconstructs the future from them. Each token
carries sin-cos space and time positions and an embedding of its weekday and slot of day.

UniST's prompt network ("knowledge-guided prompts") adds to every future token of the
decoder a prompt retrieved from learned memory pools (keys and values queried by
attention):
- spatial prompt: the history frames, stacked as channels, through convolutions of
  several kernel sizes (1, 3, 5, ...) query the spatial memory pixel by pixel; the answers
  are patch-embedded and averaged over scales;
- closeness prompt: each location's sequence of decoder tokens goes through a one-layer
  Transformer, is averaged over time and queries the temporal memory;
- period prompt: the same slots on the previous ``daily_context`` days (``batch["daily"]``)
  are tokenised like the data, each token's sequence over days goes through its own
  one-layer Transformer, is averaged and queries the same temporal memory.

Positions are computed on the fly from the grid, and the slot-of-day table is indexed by
the fraction of the day, so the weights of a model built for one grid load into a model
for any other grid (and any slots per day) with the same channels, history and horizon:
what UniST's multi-dataset pre-training needs.

Departures from the paper and its code:
- Only the forecasting (temporal) masking mode; the random, tube, block and frame masks
  of UniST's pre-training stage are not implemented.
- One token width and one head count for encoder and decoder (UniST's configurations
  always use equal widths); defaults are scaled down for grids of 16x8 to 32x32 (UniST
  "middle": width 128, depth 6 + 4, 512 memory slots).
- UniST keeps separate time-embedding tables for 48- and 24-slot datasets; here one table
  of ``time_slots`` entries is shared, each slot mapped to its fraction of the day.
- All C channels enter one token (UniST tokenises a single channel).
- Grids the patch does not divide are zero-padded and the forecast cropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from stvfm.errors import ConfigError
from stvfm.models.base import Forecaster, ModelConfig
from stvfm.models.patching import pad_grid, unpatchify
from stvfm.models.registry import register_model
from stvfm.shape import ForecastShape


@dataclass(frozen=True)
class UniSTConfig(ModelConfig):
    """Defaults scaled from UniST's sizes 1-2 (width 64) for grids of 16x8 to 32x32."""

    patch: int = 2  # spatial patch side (protocol: 2)
    temporal_patch: int = 2  # steps per token, as UniST; must divide history and horizon
    width: int = 64  # token width of encoder, decoder and prompts (multiple of 4 and of heads)
    encoder_depth: int = 4  # Transformer blocks reading the history tokens
    decoder_depth: int = 3  # Transformer blocks reconstructing the masked future tokens
    heads: int = 4  # attention heads in every Transformer layer
    mlp_ratio: int = 2  # feed-forward width / token width, as UniST
    dropout: float = 0.1  # dropout on the embedded tokens, as UniST
    time_slots: int = 48  # entries of the slot-of-day table (slots are mapped by fraction of day)
    prompt: bool = True  # add the spatial / closeness / period memory prompts to future tokens
    daily_context: int = 3  # previous days read by the period prompt (needs prompt; 0 = none), as UniST
    spatial_memory: int = 128  # slots of the spatial memory pool (UniST: 512)
    temporal_memory: int = 128  # slots of the temporal memory pool (UniST: 512)
    prompt_scales: int = 3  # convolutions of kernel 1, 3, 5, ... in the spatial prompt, as UniST

    positive = ("patch", "temporal_patch", "width", "encoder_depth", "decoder_depth", "heads", "mlp_ratio", "time_slots",
                "spatial_memory", "temporal_memory", "prompt_scales")
    non_negative = ("daily_context",)
    fractions = ("dropout",)

    def validate(self) -> None:
        super().validate()
        if self.width % 4 or self.width % self.heads:
            raise ConfigError(f"unist width {self.width} must be a multiple of 4 and of heads {self.heads}")
        if self.daily_context and not self.prompt:
            raise ConfigError(
                "unist reads daily context only through its prompts: set daily_context=0 with prompt=False"
            )


def sincos_1d(positions: torch.Tensor, width: int) -> torch.Tensor:
    """(M,) positions -> (M, width) fixed sine-cosine codes (MAE / UniST "SinCos")."""
    frequencies = 1.0 / 10000 ** (torch.arange(width // 2, dtype=torch.float32, device=positions.device) / (width / 2))
    angles = positions.float()[:, None] * frequencies[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def sincos_2d(rows: int, cols: int, width: int, device: torch.device) -> torch.Tensor:
    """(rows*cols, width) codes of a row-major patch grid: half the width per axis."""
    row_index = torch.arange(rows, device=device).repeat_interleave(cols)
    col_index = torch.arange(cols, device=device).repeat(rows)
    return torch.cat([sincos_1d(row_index, width // 2), sincos_1d(col_index, width // 2)], dim=-1)


class MemoryPool(nn.Module):
    """Learned key/value memory read by attention: the store of UniST's prompts."""

    def __init__(self, slots: int, width: int):
        super().__init__()
        self.keys = nn.Parameter(torch.empty(slots, width))
        self.values = nn.Parameter(torch.empty(slots, width))
        nn.init.trunc_normal_(self.keys, std=0.02)
        nn.init.trunc_normal_(self.values, std=0.02)
        self.query = nn.Linear(width, width)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        attention = torch.softmax(torch.tanh(self.query(features)) @ self.keys.T, dim=-1)
        return attention @ self.values


def sequence_summariser(width: int, heads: int) -> nn.TransformerEncoder:
    """One post-norm Transformer layer (feed-forward = width), as UniST's prompt encoders."""
    layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=width, batch_first=True)
    return nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)


def transformer_stack(width: int, heads: int, depth: int, mlp_ratio: int) -> nn.TransformerEncoder:
    """Pre-norm ViT blocks with GELU and a final LayerNorm, as UniST's encoder and decoder."""
    layer = nn.TransformerEncoderLayer(
        width, heads, dim_feedforward=mlp_ratio * width, dropout=0.0, activation="gelu",
        layer_norm_eps=1e-6, batch_first=True, norm_first=True,
    )
    return nn.TransformerEncoder(layer, depth, norm=nn.LayerNorm(width, eps=1e-6), enable_nested_tensor=False)


class PromptNetwork(nn.Module):
    """Spatial, closeness and period prompts for the future tokens, read from memory pools."""

    def __init__(self, shape: ForecastShape, config: UniSTConfig):
        super().__init__()
        width = config.width
        self.scale_convs = nn.ModuleList(
            nn.Conv2d(shape.history * shape.channels, width, kernel_size=1 + 2 * scale, padding=scale)
            for scale in range(config.prompt_scales)
        )
        self.spatial_memory = MemoryPool(config.spatial_memory, width)
        self.spatial_patch = nn.Conv2d(width, width, kernel_size=config.patch, stride=config.patch)
        self.temporal_memory = MemoryPool(config.temporal_memory, width)
        self.closeness_encoder = sequence_summariser(width, config.heads)
        self.period_encoder = sequence_summariser(width, config.heads) if config.daily_context else None

    def spatial(self, history: torch.Tensor) -> torch.Tensor:
        """(B, P, C, Hp, Wp) padded history -> (B, 1, N, D), the mean over kernel scales."""
        maps = history.flatten(1, 2)
        prompts = []
        for conv in self.scale_convs:
            features = conv(maps)
            retrieved = self.spatial_memory(features.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            prompts.append(self.spatial_patch(retrieved).flatten(2).transpose(1, 2))
        return torch.stack(prompts).mean(dim=0).unsqueeze(1)

    def closeness(self, decoder_tokens: torch.Tensor) -> torch.Tensor:
        """(B, T', N, D) decoder input -> (B, 1, N, D), one prompt per location."""
        batch, steps, locations, width = decoder_tokens.shape
        sequences = decoder_tokens.transpose(1, 2).reshape(batch * locations, steps, width)
        summary = self.closeness_encoder(sequences).mean(dim=1)
        return self.temporal_memory(summary).reshape(batch, 1, locations, width)

    def period(self, daily_tokens: torch.Tensor) -> torch.Tensor:
        """(B, days, Tf, N, D) tokens of previous days -> (B, Tf, N, D), one prompt per future token."""
        batch, days, steps, locations, width = daily_tokens.shape
        sequences = daily_tokens.permute(0, 2, 3, 1, 4).reshape(-1, days, width)
        summary = self.period_encoder(sequences).mean(dim=1)
        return self.temporal_memory(summary).reshape(batch, steps, locations, width)


@register_model("unist", UniSTConfig)
class UniST(Forecaster):
    """UniST (KDD 2024): masked spatio-temporal Transformer forecasting masked future tokens, with memory prompts."""

    def __init__(self, shape: ForecastShape, config: UniSTConfig):
        super().__init__(shape, config)
        self._check(shape, config)
        self.daily_context = config.daily_context
        width, step = config.width, config.temporal_patch
        token_size = (step, config.patch, config.patch)
        self.value_embedding = nn.Conv3d(shape.channels, width, kernel_size=token_size, stride=token_size)
        self.slot_embedding = nn.Embedding(config.time_slots, width)
        self.weekday_embedding = nn.Embedding(7, width)
        self.time_patch = nn.Conv1d(width, width, kernel_size=step, stride=step)
        self.embedding_dropout = nn.Dropout(config.dropout)
        self.encoder = transformer_stack(width, config.heads, config.encoder_depth, config.mlp_ratio)
        self.decoder_embed = nn.Linear(width, width)
        self.mask_token = nn.Parameter(torch.empty(1, 1, 1, width))
        self.decoder = transformer_stack(width, config.heads, config.decoder_depth, config.mlp_ratio)
        self.head = nn.Sequential(
            nn.Linear(width, width), nn.GELU(), nn.Linear(width, width), nn.GELU(),
            nn.Linear(width, step * shape.channels * config.patch**2),
        )
        self.prompts = PromptNetwork(shape, config) if config.prompt else None
        self._initialise()

    @staticmethod
    def _check(shape: ForecastShape, config: UniSTConfig) -> None:
        if shape.history % config.temporal_patch or shape.horizon % config.temporal_patch:
            raise ConfigError(
                f"unist temporal_patch {config.temporal_patch} must divide "
                f"history {shape.history} and horizon {shape.horizon}"
            )
        if shape.daily_context != config.daily_context or shape.weekly_context:
            raise ConfigError(
                f"unist is configured for {config.daily_context} day(s) and no week of context but the data provides "
                f"{shape.daily_context} day(s) / {shape.weekly_context} week(s)"
            )

    def _initialise(self) -> None:
        """UniST's initialisation: Xavier linear layers, small normal embeddings and mask token."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        for table in (self.slot_embedding.weight, self.weekday_embedding.weight):
            nn.init.trunc_normal_(table, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        nn.init.xavier_uniform_(self.value_embedding.weight.flatten(1))

    def embed_values(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, C, Hp, Wp) -> (B, T/temporal_patch, N, D) space-time tokens, row-major N."""
        tokens = self.value_embedding(frames.transpose(1, 2))
        return tokens.flatten(3).permute(0, 2, 3, 1)

    def embed_times(self, times: torch.Tensor) -> torch.Tensor:
        """(B, T, 2) weekday/slot -> (B, T/temporal_patch, D), one code per temporal patch."""
        slot = times[..., 1] * self.config.time_slots // self.shape.slots_per_day
        codes = self.slot_embedding(slot) + self.weekday_embedding(times[..., 0])
        return self.time_patch(codes.transpose(1, 2)).transpose(1, 2)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        patch = self.config.patch
        batch_size, _, channels, height, width = batch["x"].shape
        history = pad_grid(batch["x"], patch, self.shape.scaled_zero)
        padded_h, padded_w = history.shape[-2:]

        history_tokens = self.embed_values(history)
        history_patches = history_tokens.shape[1]
        time_codes = self.embed_times(torch.cat([batch["x_time"], batch["y_time"]], dim=1))
        all_patches = time_codes.shape[1]
        grid_positions = sincos_2d(padded_h // patch, padded_w // patch, self.config.width, history.device)
        step_positions = sincos_1d(torch.arange(all_patches, device=history.device), self.config.width)
        positions = step_positions[:, None] + grid_positions[None]  # (T', N, D)
        position_time = positions[None] + time_codes[:, :, None]  # (B, T', N, D)

        encoder_input = self.embedding_dropout(history_tokens + time_codes[:, :history_patches, None])
        encoder_input = encoder_input + positions[None, :history_patches]
        latent = self.encoder(encoder_input.flatten(1, 2))

        locations = history_tokens.shape[2]
        decoded_history = self.decoder_embed(latent).reshape(batch_size, history_patches, locations, -1)
        masked_future = self.mask_token.expand(batch_size, all_patches - history_patches, locations, -1)
        decoder_input = torch.cat([decoded_history, masked_future], dim=1) + position_time
        if self.prompts is not None:
            decoder_input = self._prompt_future(decoder_input, history, position_time, batch, history_patches)
        future = self.decoder(decoder_input.flatten(1, 2)).reshape(decoder_input.shape)[:, history_patches:]

        values = self.head(future)  # (B, Tf, N, temporal_patch * C * patch^2)
        values = values.reshape(*values.shape[:3], self.config.temporal_patch, -1).transpose(2, 3)
        future_tokens = values.reshape(batch_size, self.shape.horizon, locations, -1)
        frames = unpatchify(future_tokens, patch, channels, padded_h, padded_w)
        return {"forecast": frames[..., :height, :width]}

    def _prompt_future(
        self,
        decoder_input: torch.Tensor,
        history: torch.Tensor,
        position_time: torch.Tensor,
        batch: dict[str, torch.Tensor],
        history_patches: int,
    ) -> torch.Tensor:
        """Add UniST's spatial + closeness (+ period) prompts to the future tokens only."""
        future_position_time = position_time[:, history_patches:]
        prompt = self.prompts.spatial(history) + self.prompts.closeness(decoder_input) + future_position_time
        if self.config.daily_context:
            daily = pad_grid(batch["daily"], self.config.patch, self.shape.scaled_zero)
            days = daily.shape[1]
            daily_tokens = self.embed_values(daily.flatten(0, 1))
            prompt = prompt + self.prompts.period(daily_tokens.reshape(-1, days, *daily_tokens.shape[1:]))
        return torch.cat([decoder_input[:, :history_patches], decoder_input[:, history_patches:] + prompt], dim=1)
