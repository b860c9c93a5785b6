"""A synthetic city in the generic format: a real file on a tiny grid, for tests, examples and device smoke runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stvfm.data.series import GridSeries
from stvfm.data.sources.generic import save_generic_npz


def write_synthetic_city(path: str | Path, days: int = 20, height: int = 5, width: int = 3,
                         interval_minutes: int = 60, seed: int = 0, channel: str = "pickups") -> Path:
    """A generic-format file of Poisson(4) counts from 2024-01-01 on: a real file, a tiny grid.

    Twenty days leave room for the models with weekly context; the series is named after the file.
    """
    path = Path(path)
    steps = days * 24 * 60 // interval_minutes
    values = np.random.default_rng(seed).poisson(4.0, size=(steps, 1, height, width)).astype(np.float32)
    timestamps = np.datetime64("2024-01-01T00:00", "s") + np.arange(steps) * np.timedelta64(interval_minutes * 60, "s")
    return save_generic_npz(GridSeries(path.stem, values, timestamps, interval_minutes, (channel,)), path)
