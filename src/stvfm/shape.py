"""The forecast shape: what a model must know about the data to build itself, and what the data layer
derives from a series and a protocol. A leaf both sides import, so reading data never loads a model.

Imports from stvfm: none.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ForecastShape:
    """What a model must know about the data to build itself."""

    history: int = 6
    horizon: int = 6
    channels: int = 1
    height: int = 16
    width: int = 16
    slots_per_day: int = 48
    daily_context: int = 0
    weekly_context: int = 0
    #: The scaled value of 0 counts, what padding cells beyond the grid hold (-1: data whose minimum is 0).
    scaled_zero: float = -1.0
