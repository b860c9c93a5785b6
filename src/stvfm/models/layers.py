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


class FastCPUDropout(nn.Dropout):
    """``nn.Dropout`` whose CPU mask is cut from 64-bit random words, four 16-bit draws per word.

    torch's CPU ``bernoulli_`` draws one number per element on one thread, so on a 2-core CPU dropout
    took ~8% of an ST-VFM training step and did not get faster with threads; one quarter of the draws
    halves its cost. The keep probability is exact to 1/65536, and the stream is still the seeded CPU
    generator, so runs stay reproducible. Elsewhere (CUDA's fused kernel) it is ``nn.Dropout``.
    """

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or self.p == 1 or inputs.device.type != "cpu":
            return super().forward(inputs)
        count = inputs.numel()
        words = torch.empty((count + 3) // 4, dtype=torch.int64).random_(-2 ** 63, None)  # all 64 bits random
        keep = words.view(torch.int16)[:count].view(inputs.shape) >= round(self.p * 65536) - 32768
        return inputs * (keep.to(inputs.dtype) * (1 / (1 - self.p)))


def use_fast_cpu_dropout(module: nn.Module) -> nn.Module:
    """Swap every plain ``nn.Dropout`` inside ``module`` (e.g. ``nn.TransformerEncoderLayer``'s) for
    ``FastCPUDropout`` with the same rate; attention-weight dropout, done inside the attention kernel,
    is left as it is."""
    for name, child in module.named_children():
        if type(child) is nn.Dropout:
            setattr(module, name, FastCPUDropout(child.p))
        else:
            use_fast_cpu_dropout(child)
    return module
