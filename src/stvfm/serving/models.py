"""The models a service serves: each loaded export under its name, with the facts requests are checked against.

This is the one module that reads a loaded export's attributes; the rest of the service sees
``ServedModel`` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from stvfm.errors import ConfigError


@dataclass(frozen=True)
class ServedModel:
    """One export, loaded, under the name requests use (its folder's name)."""

    name: str
    forecaster: Any
    history_steps: int  # the frames a forecast reads (P, or more for a model with daily or weekly context)
    horizon: int
    channels: int
    height: int
    width: int
    interval_minutes: int
    series_start: np.datetime64  # the model's steps fall on series_start + k x interval
    card: dict

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    def check_input(self, values: np.ndarray, timestamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The export's own check of a forecast's history: its last P frames, or a ``DataError`` naming the fault."""
        return self.forecaster.check_input(values, timestamps)

    def forecast_batch(self, histories: np.ndarray, timestamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, P, C, H, W) histories and their (B, P) timestamps -> (B, Q, C, H, W) futures and (B, Q) timestamps."""
        return self.forecaster.forecast_batch(histories, timestamps)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "history_steps": self.history_steps, "horizon": self.horizon,
                "channels": self.channels, "height": self.height, "width": self.width,
                "interval_minutes": self.interval_minutes,
                "series_start": str(self.series_start.astype("datetime64[s]")), "card": self.card}


def served_model(forecaster: Any) -> ServedModel:
    """The served view of a forecaster that ``stvfm.load`` returned (``stvfm.export``'s documented contract)."""
    height, width = forecaster.grid
    return ServedModel(name=forecaster.name, forecaster=forecaster, history_steps=int(forecaster.input_steps),
                       horizon=int(forecaster.horizon), channels=int(forecaster.channels), height=int(height),
                       width=int(width), interval_minutes=int(forecaster.interval_minutes),
                       series_start=np.datetime64(forecaster.series_start, "s"), card=dict(forecaster.card))


def load_served_models(exports: tuple[str, ...]) -> dict[str, ServedModel]:
    """Every export, loaded and checked before the service answers anything; a name given twice is refused."""
    from stvfm.export import load

    if not exports:
        raise ConfigError("stvfm serve: give at least one export folder (written by `stvfm export`)")
    models: dict[str, ServedModel] = {}
    for folder in exports:
        model = served_model(load(folder))
        if model.name in models:
            raise ConfigError(f"{folder}: another export is already served as {model.name!r}; give each a folder "
                              "of its own name")
        models[model.name] = model
    return models
