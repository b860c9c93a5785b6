"""STID: Shao, Zhang, Wang, Wei, Xu, "Spatial-Temporal Identity: A Simple yet Effective
Baseline for Multivariate Time Series Forecasting", CIKM 2022.

Every grid cell is a node. Each node's P history values are embedded by one linear layer
and concatenated with three identities that make otherwise indistinguishable samples
distinguishable: a learned embedding per node (spatial identity), one per slot of the day
and one per weekday (temporal identities, taken at the last history step as in the
paper). A stack of residual MLPs then maps the result to the node's Q future values.

Departures from the paper:
- The paper's 1x1 convolutions over (features, nodes) are written as the equivalent
  linear layers over the node axis.
- The input holds only the C measured channels (the paper's code may also feed the
  time-of-day / weekday features as extra input channels; here they enter only through
  their embeddings). With C > 1 the node's history is the flattened (P, C) values and its
  output all Q*C values at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from stvfm.models.base import Forecaster, ModelConfig
from stvfm.models.registry import register_model
from stvfm.shape import ForecastShape


@dataclass(frozen=True)
class STIDConfig(ModelConfig):
    """The paper's defaults (its widths already suit small grids)."""

    series_width: int = 32  # width of the embedded history of one node
    node_width: int = 32  # width of the spatial identity embedding of each grid cell
    slot_width: int = 32  # width of the slot-of-day embedding
    weekday_width: int = 32  # width of the weekday embedding
    layers: int = 3  # residual MLP blocks
    dropout: float = 0.15  # dropout inside each residual MLP block

    positive = ("series_width", "node_width", "slot_width", "weekday_width", "layers")
    fractions = ("dropout",)


class ResidualMLP(nn.Module):
    """Linear-ReLU-Dropout-Linear with a skip: the encoder block of STID."""

    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Dropout(dropout), nn.Linear(width, width))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.body(hidden)


@register_model("stid", STIDConfig)
class STID(Forecaster):
    """STID (CIKM 2022): an MLP over each cell's history plus spatial and temporal identity embeddings."""

    def __init__(self, shape: ForecastShape, config: STIDConfig):
        super().__init__(shape, config)
        nodes = shape.height * shape.width
        self.series_embedding = nn.Linear(shape.history * shape.channels, config.series_width)
        self.node_embedding = nn.Parameter(torch.empty(nodes, config.node_width))
        self.slot_embedding = nn.Parameter(torch.empty(shape.slots_per_day, config.slot_width))
        self.weekday_embedding = nn.Parameter(torch.empty(7, config.weekday_width))
        for table in (self.node_embedding, self.slot_embedding, self.weekday_embedding):
            nn.init.xavier_uniform_(table)
        width = config.series_width + config.node_width + config.slot_width + config.weekday_width
        self.encoder = nn.Sequential(*[ResidualMLP(width, config.dropout) for _ in range(config.layers)])
        self.regression = nn.Linear(width, shape.horizon * shape.channels)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        history = batch["x"]
        batch_size, steps, channels, height, width = history.shape
        nodes = height * width
        # (B, P, C, H, W) -> (B, N, P*C): each node's whole history is one feature vector.
        series = history.permute(0, 3, 4, 1, 2).reshape(batch_size, nodes, steps * channels)
        last_time = batch["x_time"][:, -1]
        features = [
            self.series_embedding(series),
            self.node_embedding.unsqueeze(0).expand(batch_size, -1, -1),
            self.slot_embedding[last_time[:, 1]].unsqueeze(1).expand(-1, nodes, -1),
            self.weekday_embedding[last_time[:, 0]].unsqueeze(1).expand(-1, nodes, -1),
        ]
        hidden = self.encoder(torch.cat(features, dim=-1))
        future = self.regression(hidden).reshape(batch_size, height, width, self.shape.horizon, channels)
        return {"forecast": future.permute(0, 3, 4, 1, 2)}
