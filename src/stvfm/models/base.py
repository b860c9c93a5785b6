"""The one interface between every forecaster and the rest of stvfm.

A batch is a dict of tensors built by ``stvfm.data.windows``:

- ``x``       float (B, P, C, H, W): history, scaled to [-1, 1]
- ``y``       float (B, Q, C, H, W): future, scaled (absent at prediction time)
- ``x_time``  long  (B, P, 2): (weekday Monday=0, slot of day) of each history step
- ``y_time``  long  (B, Q, 2): the same for each future step
- ``start``   long  (B,): series index of the first history step
- ``daily``   float (B, D, Q, C, H, W), optional: each future step's value D=1..d days earlier
- ``weekly``  float (B, K, Q, C, H, W), optional: each future step's value K=1..k weeks earlier
- ``x_observed``, ``y_observed`` bool (B, P, ...) and (B, Q, ...), optional (a series with gaps):
  False where a value is missing; values there are filled, never NaN, and losses average over the
  targets ``y_observed`` marks (``observed_mean``)

Evaluation, the CLI and reports call only ``predict``; training calls ``forward`` and
``loss``. Auxiliary outputs (the flow forecast of ST-VFM) live in ``forward``'s dict and
in ``loss``, never in ``predict``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from stvfm.errors import ConfigError
from stvfm.shape import ForecastShape
from stvfm.values import check_fields


class ModelConfig:
    """Base of every model's options: they are checked once, on construction, before any model is
    built or any record is read, and a bad one fails with one ``ConfigError`` line naming it.

    Subclasses are dataclasses that name their options in ``positive``, ``non_negative`` and
    ``fractions``, and extend ``validate`` for any other rule.
    """

    #: Protocol needs: how many previous days / weeks of each forecast step the model reads.
    #: A model that reads them declares them as options (fields) of its config instead.
    daily_context: ClassVar[int] = 0
    weekly_context: ClassVar[int] = 0

    #: Options that must be > 0, >= 0, or between 0 and 1 (probabilities such as dropout).
    positive: ClassVar[tuple[str, ...]] = ()
    non_negative: ClassVar[tuple[str, ...]] = ()
    fractions: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check the declared types and rules; configs with other rules extend this."""
        check_fields(self, f"{type(self).__name__.removesuffix('Config')} option ")
        for name in self.positive:
            if not getattr(self, name) > 0:
                self._fail(name, "positive")
        for name in self.non_negative:
            if not getattr(self, name) >= 0:
                self._fail(name, ">= 0")
        for name in self.fractions:
            if not 0 <= getattr(self, name) <= 1:
                self._fail(name, "between 0 and 1")

    def _fail(self, name: str, rule: str) -> None:
        model = type(self).__name__.removesuffix("Config")
        raise ConfigError(f"{model} option {name} must be {rule}, got {getattr(self, name)!r}")


def observed_mean(values: torch.Tensor, observed: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``values`` over the entries ``observed`` marks (all of them when None); 0 when none is."""
    if observed is None:
        return torch.mean(values)
    # zeroed in place on a clone, which keeps the layout of ``values`` and so the order of the sum: with
    # every target observed this is torch.mean bit for bit
    return values.clone().masked_fill_(~observed, 0.0).sum() / observed.sum().clamp(min=1)


class Forecaster(nn.Module):
    """Base of every model, learned or classical."""

    #: True for models that train by gradient descent through the shared Lightning task.
    trainable: bool = True
    #: Periodic context the model reads: number of previous days / weeks it needs (0 = none).
    daily_context: int = 0
    weekly_context: int = 0

    def __init__(self, shape: ForecastShape, config: ModelConfig):
        super().__init__()
        self.shape = shape
        self.config = config
        #: Epochs of training done, with the current epoch's fraction, as the trainer sets it before each
        #: training step: for a model whose training follows the schedule (scheduled sampling), in epochs
        #: whatever the dataset's size, and a resumed run sees what the uninterrupted one saw.
        self.epochs_trained = 0.0

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Return at least ``{"forecast": (B, Q, C, H, W)}`` in scaled units."""
        raise NotImplementedError

    def loss(self, batch: dict[str, torch.Tensor], outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"loss": total}`` plus any named terms worth logging; errors count on observed targets only."""
        mse = observed_mean((outputs["forecast"].float() - batch["y"].float()) ** 2, batch.get("y_observed"))
        return {"loss": mse, "mse_st": mse}

    @torch.no_grad()
    def predict(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.forward(batch)["forecast"]

    def describe(self) -> dict[str, Any]:
        """What the model really used beyond its options, written beside every result so a random-init
        backbone is never taken for a pretrained one: ``backbone`` (the name of the frozen vision
        backbone it holds as ``self.backbone``, what ``--compile-backbone`` compiles), ``weights`` (what
        was loaded), ``variant``; only the facts a model has."""
        return {}


class ClassicalForecaster(Forecaster):
    """A model fitted in closed form (or per cell) on the scaled training series, no gradients."""

    trainable = False
    #: How it is fitted, in the words every table puts where a learned model's budget goes.
    fitted_by = "closed form"

    def fit_series(self, values: np.ndarray, time_features: np.ndarray, train_end: int) -> None:
        """Fit on ``values[:train_end]``.

        ``values`` is the whole scaled series (T, C, H, W), NaN where a value is missing, and
        ``time_features`` its (T, 2) weekday/slot array; models that filter causally (ARIMA) may use later steps
        only to condition forecasts at later origins, never to fit parameters.
        """
        raise NotImplementedError
