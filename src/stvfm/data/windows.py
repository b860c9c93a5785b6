"""The evaluation protocol (UniST's): chronological split, stride-1 windows, time features.

A window starting at series index ``s`` reads history ``[s, s+P)`` and future
``[s+P, s+P+Q)``; it belongs to a split only if both lie inside the split's
``[begin, end)``. Periodic context (the same future steps 1..D days or 1..K weeks
earlier) may reach before the split's start, since that is the past, but windows whose
context would reach before series index 0 are dropped. In a series with gaps, a window whose
history has a missing value is filled or left out by the gap rule (``stvfm.data.gaps``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from stvfm.data.batch import Batch, series_window
from stvfm.data.gaps import GAP_FILLS, windows_with_history_gaps
from stvfm.data.series import check_channel
from stvfm.errors import ConfigError

SPLITS = ("train", "val", "test")
SCALING_MODES = ("train", "all")


@dataclass(frozen=True)
class ProtocolConfig:
    """``scaling="all"`` reproduces UniST's min/max over every split (test leakage); "train" is the default.
    ``gap_fill``: what a window's history with missing values reads (``stvfm.data.gaps``)."""

    history: int = 6
    horizon: int = 6
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    scaling: str = "train"
    channel: int | str = 0  # an index or ALL_CHANNELS
    steps: int | None = None
    daily_context: int = 0
    weekly_context: int = 0
    gap_fill: str = "last"

    def __post_init__(self) -> None:
        if self.history < 1 or self.horizon < 1:
            raise ConfigError(f"history and horizon must be at least 1, got {self.history} and {self.horizon}")
        if len(self.split) != 3 or min(self.split) <= 0 or not math.isclose(sum(self.split), 1.0, abs_tol=1e-6):
            raise ConfigError(f"split must be three positive ratios summing to 1, got {self.split}")
        if self.scaling not in SCALING_MODES:
            raise ConfigError(f"scaling must be one of {SCALING_MODES}, got {self.scaling!r}")
        if self.daily_context < 0 or self.weekly_context < 0:
            raise ConfigError(f"periodic context must be >= 0, got daily {self.daily_context}, weekly {self.weekly_context}")
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"steps must be positive, got {self.steps}")
        if self.gap_fill not in GAP_FILLS:
            raise ConfigError(f"gap rule must be one of {', '.join(GAP_FILLS)}, got {self.gap_fill!r}")
        check_channel(self.channel)


def chronological_split(length: int, ratios: tuple[float, float, float] = (0.7, 0.15, 0.15)) -> dict[str, tuple[int, int]]:
    """Train = floor(r0 * T) steps, val = floor(r1 * T), test = the rest."""
    # round before floor so 0.7 * 30 = 20.999999999999996 still gives 21
    train = math.floor(round(ratios[0] * length, 9))
    val = math.floor(round(ratios[1] * length, 9))
    return {"train": (0, train), "val": (train, train + val), "test": (train + val, length)}


def time_features(timestamps: np.ndarray, interval_minutes: int) -> np.ndarray:
    """(T, 2) int64: weekday with Monday = 0, and slot of the day in units of the interval."""
    seconds = timestamps.astype("datetime64[s]").astype(np.int64)
    days = np.floor_divide(seconds, 86400)
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday
    slot = (seconds - days * 86400) // (interval_minutes * 60)
    return np.stack([weekday, slot], axis=1).astype(np.int64)


def window_starts(
    bounds: tuple[int, int],
    history: int,
    horizon: int,
    earliest_context: int = 0,
) -> np.ndarray:
    """Start indices of the windows inside ``bounds`` whose context reach (steps before the first future step) fits."""
    begin, end = bounds
    first = max(begin, earliest_context - history)
    last = end - history - horizon
    return np.arange(first, last + 1, dtype=np.int64) if last >= first else np.zeros(0, dtype=np.int64)


class WindowDataset(Dataset):
    """Windows of one split, sliced on demand from the shared scaled series (never copied).

    ``observed`` (the series' mask, None without gaps) puts the masks into every window;
    ``skip_gaps`` leaves out the windows whose history has a missing value.
    """

    def __init__(
        self,
        values: torch.Tensor | np.ndarray,
        time_feats: torch.Tensor | np.ndarray,
        bounds: tuple[int, int],
        history: int,
        horizon: int,
        slots_per_day: int,
        daily_context: int = 0,
        weekly_context: int = 0,
        observed: torch.Tensor | np.ndarray | None = None,
        skip_gaps: bool = False,
    ):
        self.values = torch.as_tensor(values)
        self.time_feats = torch.as_tensor(time_feats, dtype=torch.long)
        self.bounds = bounds
        self.history = history
        self.horizon = horizon
        self.day = slots_per_day
        self.daily_context = daily_context
        self.weekly_context = weekly_context
        reach = max(daily_context * slots_per_day, weekly_context * 7 * slots_per_day)
        starts = window_starts(bounds, history, horizon, earliest_context=reach)
        self.observed = None if observed is None else torch.as_tensor(observed)
        gappy = np.zeros(len(starts), dtype=bool)
        if self.observed is not None:
            periods = [k * slots_per_day for k in range(1, daily_context + 1)]
            periods += [k * 7 * slots_per_day for k in range(1, weekly_context + 1)]
            gappy = windows_with_history_gaps(self.observed.numpy(), starts, history, horizon, periods)
        #: windows of the split whose history had a missing value: filled, or (``skip_gaps``) left out
        self.history_gap_windows = int(gappy.sum())
        self.window_starts = starts[~gappy] if skip_gaps else starts

    def __len__(self) -> int:
        return len(self.window_starts)

    def __getitem__(self, index: int) -> Batch:
        return series_window(self.values, self.time_feats, int(self.window_starts[index]), self.history,
                             self.horizon, self.day, self.daily_context, self.weekly_context, self.observed)
