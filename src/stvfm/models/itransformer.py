"""iTransformer: Liu, Hu, Zhang, Wu, Wang, Ma and Long, "iTransformer: Inverted Transformers
Are Effective for Time Series Forecasting", ICLR 2024.

The Transformer is inverted: a token is a whole variate, not a time step. Each grid cell x
channel is one variate; its P-step history is normalised (series stationarisation: its own
mean and standard deviation, restored at the output), embedded by one linear layer into a
token, and attention runs across all variate tokens, so cells attend to one another without
any notion of the grid. A linear projection maps each token to its Q future values. As in
the paper's code, the history's time features (weekday, slot of day) can join as extra
variate tokens that are attended to but not forecast.

Departures from the paper:
- Time features are the protocol's weekday and slot of day scaled to [-0.5, 0.5] (the
  paper's datasets carry more calendar features, encoded the same way).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from stvfm.models.base import Forecaster, ModelConfig
from stvfm.models.registry import register_model
from stvfm.shape import ForecastShape


@dataclass(frozen=True)
class ITransformerConfig(ModelConfig):
    #: Width of the variate tokens (paper: 512 on hundreds of variates; 64 for small grids).
    width: int = 64
    #: Attention heads (paper: 8).
    heads: int = 4
    #: Encoder layers (paper: 2-4).
    layers: int = 2
    #: Hidden width of the feed-forward block (paper: equal to the width).
    feedforward: int = 128
    #: Dropout in the embedding and the encoder (paper: 0.1).
    dropout: float = 0.1
    #: Add the history's weekday and slot of day as extra variate tokens (paper's code: on).
    time_tokens: bool = True
    #: Normalise each series by its own history mean/std and restore it at the output (paper: on).
    stationarise: bool = True

    positive = ("width", "heads", "layers", "feedforward")
    fractions = ("dropout",)


@register_model("itransformer", ITransformerConfig)
class ITransformer(Forecaster):
    """iTransformer (ICLR 2024): each cell's whole history is a token; attention across cells."""

    def __init__(self, shape: ForecastShape, config: ITransformerConfig):
        super().__init__(shape, config)
        self.embedding = nn.Sequential(nn.Linear(shape.history, config.width), nn.Dropout(config.dropout))
        layer = nn.TransformerEncoderLayer(
            config.width, config.heads, config.feedforward, config.dropout, activation="gelu", batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, config.layers, norm=nn.LayerNorm(config.width), enable_nested_tensor=False)
        self.projection = nn.Linear(config.width, shape.horizon)

    def _time_tokens(self, x_time: torch.Tensor) -> torch.Tensor:
        """(B, P, 2) weekday/slot -> (B, 2, P) series in [-0.5, 0.5]."""
        weekday = x_time[..., 0].float() / 6.0 - 0.5
        slot = x_time[..., 1].float() / max(self.shape.slots_per_day - 1, 1) - 0.5
        return torch.stack([weekday, slot], dim=1)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        history = batch["x"]
        batch_size, steps = history.shape[:2]
        series = history.reshape(batch_size, steps, -1).transpose(1, 2)  # (B, N, P)
        variates = series.shape[1]
        if self.config.stationarise:
            mean = series.mean(dim=-1, keepdim=True)
            std = torch.sqrt(series.var(dim=-1, keepdim=True, correction=0) + 1e-5)
            series = (series - mean) / std
        if self.config.time_tokens:
            series = torch.cat([series, self._time_tokens(batch["x_time"]).to(series.dtype)], dim=1)

        predicted = self.projection(self.encoder(self.embedding(series)))[:, :variates]  # (B, N, Q)
        if self.config.stationarise:
            predicted = predicted * std + mean
        forecast = predicted.transpose(1, 2).reshape(batch_size, self.shape.horizon, *history.shape[2:])
        return {"forecast": forecast}