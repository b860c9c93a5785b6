"""One scalar min-max per dataset, mapped to [-1, 1] (UniST's scaling).

Works on numpy arrays and torch tensors alike, keeping the input's type and dtype, so
the same object de-scales predictions inside training and in offline evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from stvfm.errors import ConfigError, DataError

Array = TypeVar("Array", np.ndarray, torch.Tensor)


@dataclass(frozen=True)
class MinMaxScaler:
    minimum: float
    maximum: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.minimum) and np.isfinite(self.maximum)) or self.maximum < self.minimum:
            raise ConfigError(f"scaler range [{self.minimum}, {self.maximum}] is not a finite, ordered interval")

    @classmethod
    def fit(cls, values: np.ndarray | torch.Tensor) -> MinMaxScaler:
        """The range of the observed values: NaN (a missing value) is left out."""
        values = values.numpy(force=True) if isinstance(values, torch.Tensor) else np.asarray(values)
        if np.size(values) == 0:
            raise DataError("cannot fit a scaler on zero values")
        if np.isnan(values).all():
            raise DataError("cannot fit a scaler: every value is missing (NaN)")
        minimum, maximum = float(np.nanmin(values)), float(np.nanmax(values))
        if not maximum - minimum <= float(np.finfo(np.float32).max):
            raise DataError(f"values span {minimum:.3g} to {maximum:.3g}, wider than float32 holds: every scaled "
                            "value would overflow; rescale the data (e.g. to other units) first")
        return cls(minimum, maximum)

    @property
    def span(self) -> float:
        """Range used to divide; 1 for a constant series so it maps to -1 instead of dividing by zero."""
        return self.maximum - self.minimum or 1.0

    def transform(self, values: Array) -> Array:
        return (values - self.minimum) * (2.0 / self.span) - 1.0

    def inverse_transform(self, scaled: Array) -> Array:
        return (scaled + 1.0) * (self.span / 2.0) + self.minimum

    def to_dict(self) -> dict[str, float]:
        return {"minimum": self.minimum, "maximum": self.maximum}

    @classmethod
    def from_dict(cls, payload: dict) -> MinMaxScaler:
        try:
            return cls(float(payload["minimum"]), float(payload["maximum"]))
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"scaler record {payload!r} needs numeric 'minimum' and 'maximum'") from None


SCALED_RANGE = (-1.0, 1.0)


def clamp_scaled(scaled: Array) -> Array:
    """Clamp forecasts to the scaled range before de-scaling, as the protocol does."""
    if isinstance(scaled, torch.Tensor):
        return scaled.clamp(*SCALED_RANGE)
    return np.clip(scaled, *SCALED_RANGE)


def descale_forecast(scaled: Array, inverse: Callable[[Array], Array]) -> Array:
    """A forecast in original units: clamped to the scaled range, then inverted; metrics, saved
    predictions and ``predict`` all de-scale through here, so they report the same numbers."""
    return inverse(clamp_scaled(scaled))
