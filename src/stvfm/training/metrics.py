"""Streaming forecast metrics in original units, pooled the way UniST reports them.

Predictions are clamped to the scaled range [-1, 1], both sides are de-scaled, and the
sums of absolute and squared errors are kept in float64 per horizon step. MAE and RMSE
pool every step x channel x cell x window (RMSE = sqrt of the pooled MSE), so streaming
over batches gives exactly the number a single pass over all saved forecasts would.
Being a ``torchmetrics.Metric`` with sum reductions, it also sums correctly across DDP ranks.
A target that is not observed (a missing value, or one a masking rule leaves out) counts in
neither the sums nor the counts; the counts of the scored targets are reported beside the figures.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torchmetrics import Metric

from stvfm.data.scaling import descale_forecast
from stvfm.errors import DataError


class ForecastMetrics(Metric):
    """MAE and RMSE of de-scaled forecasts, pooled and per horizon step."""

    full_state_update = False
    is_differentiable = False
    higher_is_better = False

    def __init__(self, inverse: Callable[[Tensor], Tensor] | None, horizon: int, **kwargs):
        """``inverse`` maps scaled values to original units; None when updates come in original units
        already, clamped before they were saved (``predictions.npz``, re-scored by ``stvfm score``)."""
        super().__init__(**kwargs)
        self.inverse = inverse
        self.horizon = horizon
        self.add_state("absolute_error_sum", torch.zeros(horizon, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("squared_error_sum", torch.zeros(horizon, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("point_count", torch.zeros(horizon, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("target_count", torch.zeros(horizon, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("window_count", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, prediction_scaled: Tensor, target_scaled: Tensor, observed: Tensor | None = None) -> None:
        """Add a batch of (B, Q, ...) forecasts and targets, both in scaled units (original units without an
        ``inverse``); ``observed`` (same shape, bool) marks the targets that count, all of them when None."""
        if prediction_scaled.shape != target_scaled.shape:
            raise DataError(f"prediction shape {tuple(prediction_scaled.shape)} differs from target {tuple(target_scaled.shape)}")
        if prediction_scaled.ndim < 2 or prediction_scaled.shape[1] != self.horizon:
            raise DataError(f"forecasts must be (B, {self.horizon}, ...), got {tuple(prediction_scaled.shape)}")
        if self.inverse is None:
            prediction, target = prediction_scaled.detach().double(), target_scaled.detach().double()
        else:
            prediction = descale_forecast(prediction_scaled.detach().double(), self.inverse)
            target = self.inverse(target_scaled.detach().double())
        error = (prediction.double() - target.double()).flatten(2)  # (B, Q, points per step)
        self.target_count += error.shape[0] * error.shape[2]
        if observed is not None:
            observed = observed.flatten(2).to(error.device)
            # zeroed in place on a clone, keeping the layout and so the order of the sums below: with every
            # target observed the figures are those of the unmasked path bit for bit
            error = error.clone().masked_fill_(~observed, 0.0)
            self.point_count += observed.sum(dim=(0, 2))
        else:
            self.point_count += error.shape[0] * error.shape[2]
        self.absolute_error_sum += error.abs().sum(dim=(0, 2))
        self.squared_error_sum += error.square().sum(dim=(0, 2))
        self.window_count += error.shape[0]

    def compute(self) -> dict:
        """``{"mae", "rmse", "per_horizon": {"mae": [Q], "rmse": [Q], "n_points": [Q]}, "n_windows", "n_points",
        "n_targets"}`` as plain numbers: ``n_points`` targets were scored of ``n_targets``; a step with none
        scored has None for its figures."""
        if int(self.window_count) == 0:
            raise DataError("no forecasts were evaluated: the split has no windows")
        points = self.point_count.double()
        total_points = points.sum()
        if total_points == 0:
            raise DataError(f"no observed target among the {int(self.target_count.sum())} forecast targets")

        def per_step(values: Tensor) -> list[float | None]:
            return [float(value) if count else None for value, count in zip(values.tolist(), self.point_count.tolist(), strict=True)]

        return {
            "mae": float(self.absolute_error_sum.sum() / total_points),
            "rmse": float(torch.sqrt(self.squared_error_sum.sum() / total_points)),
            "per_horizon": {
                "mae": per_step(self.absolute_error_sum / points),
                "rmse": per_step(torch.sqrt(self.squared_error_sum / points)),
                "n_points": self.point_count.tolist(),
            },
            "n_windows": int(self.window_count),
            "n_points": int(total_points),
            "n_targets": int(self.target_count.sum()),
        }
