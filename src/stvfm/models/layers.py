"""Layers shared by several model families."""

from __future__ import annotations

import torch
from torch import nn


class FullPrecisionLinear(nn.Linear):
    """An ``nn.Linear`` that computes in fp32 even under bf16 autocast.

    For the layers that read grid values or write forecasts. Scaled values live in [-1, 1],
    where bf16 is 2^-8 apart near the ends: on BikeNYC that merges counts of 0 and 1 bike
    in the inputs and rounds every forecast by up to ~0.6 bikes (~4 taxis on TaxiNYC),
    a sizeable part of the errors being measured. These layers are small, so fp32 costs
    nothing measurable; the same weights load with or without it.
    """

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=inputs.device.type, enabled=False):
            return super().forward(inputs.float())
