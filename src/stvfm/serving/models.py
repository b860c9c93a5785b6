"""The models a service serves: each loaded export under its name, with the facts requests are checked against.

This is the one module that reads a loaded export's attributes; the rest of the service sees
``ServedModel`` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stvfm.errors import ConfigError


@dataclass(frozen=True)
class ServedModel:
    """One export, loaded, under the name requests use (its folder's name)."""

    name: str
    forecaster: Any
    history_steps: int
    horizon: int
    channels: int
    height: int
    width: int
    interval_minutes: int
    card: dict

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    def forecast_batch(self, histories: np.ndarray, timestamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, P, C, H, W) histories and their (B, P) timestamps -> (B, Q, C, H, W) futures and (B, Q) timestamps."""
        return self.forecaster.forecast_batch(histories, timestamps)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "history_steps": self.history_steps, "horizon": self.horizon,
                "channels": self.channels, "height": self.height, "width": self.width,
                "interval_minutes": self.interval_minutes, "card": self.card}


def served_model(name: str, forecaster: Any) -> ServedModel:
    """The served view of a forecaster that ``stvfm.load`` returned."""
    channels, height, width = forecaster.grid
    return ServedModel(name=name, forecaster=forecaster, history_steps=int(forecaster.history_steps),
                       horizon=int(forecaster.horizon), channels=int(channels), height=int(height),
                       width=int(width), interval_minutes=int(forecaster.interval_minutes), card=dict(forecaster.card))


def load_served_models(exports: tuple[str, ...]) -> dict[str, ServedModel]:
    """Every export, loaded before the service answers anything; a name given twice is refused."""
    from stvfm.export import load

    if not exports:
        raise ConfigError("stvfm serve: give at least one export folder (written by `stvfm export`)")
    models: dict[str, ServedModel] = {}
    for folder in exports:
        name = Path(folder).resolve().name
        if name in models:
            raise ConfigError(f"{folder}: another export is already served as {name!r}; give each a folder of its own name")
        models[name] = served_model(name, load(folder))
    return models
