"""Layers shared by several model families."""

from __future__ import annotations

import torch
from torch import nn


class FullPrecisionLinear(nn.Linear):
    """An ``nn.Linear`` that computes in fp32 even under bf16 autocast.

    For the layers that read grid values or write forecasts. Scaled values live in [-1, 1],
    where bf16 values are 2^-8 apart near the ends, i.e. about half a bike on BikeNYC: in
    bf16 the model could not tell 0 from 1 bike in a cell, and every forecast would be
    rounded to that step. These layers are small, so fp32 costs nothing measurable, and the
    same weights load with or without it. (Re-testing a bf16-trained ST-VFM checkpoint with
    fp32 heads moved its BikeNYC test RMSE / MAE by < 0.01: the effect on metrics is small.)
    """

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        device = inputs.device.type
        if device not in ("cpu", "cuda") or not torch.is_autocast_enabled(device):
            return super().forward(inputs)  # no autocast (or the meta device of FLOP counting): nothing to undo
        with torch.autocast(device_type=device, enabled=False):
            return super().forward(inputs.float())
