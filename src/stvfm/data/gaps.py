"""Missing values: what fills a gap in a window's history, and which windows a gap rules out.

A missing value is NaN in the series (``GridSeries.observed`` is False there). Models never read
NaN: the prepared series is filled once by the run's rule (``ProtocolConfig.gap_fill``), and every
window of a series with gaps carries the masks of its history and targets (``x_observed``,
``y_observed``), so losses and metrics count observed targets only. The rules:

- ``last``: the last observation of the same channel and cell carried forward; before a cell's
  first observation, the cell's mean over the observed training steps.
- ``slot-mean``: the mean of the cell's observed training values at the same slot of the day; a
  slot the training split never observed takes the cell's training mean.
- ``skip``: a window whose history (or periodic context) holds a missing value is left out; the
  gaps are filled as ``last`` only as placeholders under the target mask (a teacher-forcing model
  may read them, never a metric).

A cell never observed in the training split takes the mean of every observed training value.
Filling uses the training split's statistics only, so no later value leaks into an earlier input.
"""

from __future__ import annotations

import numpy as np

from stvfm.errors import DataError

GAP_FILLS = ("last", "slot-mean", "skip")


def _cell_means(values: np.ndarray, observed: np.ndarray, train_end: int) -> np.ndarray:
    """(C, H, W) float64: each cell's mean over its observed training values, else the split's mean."""
    training, seen = values[:train_end].astype(np.float64), observed[:train_end]
    if not seen.any():
        raise DataError(f"the training split (steps 0..{train_end - 1}) has no observed value")
    counts = seen.sum(axis=0)
    sums = np.where(seen, training, 0.0).sum(axis=0)
    overall = sums.sum() / counts.sum()
    return np.where(counts > 0, sums / np.maximum(counts, 1), overall)


def _last_observation(values: np.ndarray, observed: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    steps = np.arange(values.shape[0]).reshape(-1, *([1] * (values.ndim - 1)))
    latest = np.maximum.accumulate(np.where(observed, steps, -1), axis=0)
    carried = np.take_along_axis(values, np.maximum(latest, 0), axis=0)
    return np.where(latest >= 0, carried, fallback.astype(values.dtype))


def _slot_means(values: np.ndarray, observed: np.ndarray, slot_of_day: np.ndarray, train_end: int,
                fallback: np.ndarray) -> np.ndarray:
    """(slots, C, H, W): the mean of each cell's observed training values per slot of the day."""
    slots = int(slot_of_day.max()) + 1
    sums = np.zeros((slots, *values.shape[1:]))
    counts = np.zeros((slots, *values.shape[1:]))
    seen = observed[:train_end]
    np.add.at(sums, slot_of_day[:train_end], np.where(seen, values[:train_end], 0.0))
    np.add.at(counts, slot_of_day[:train_end], seen)
    return np.where(counts > 0, sums / np.maximum(counts, 1), fallback)


def fill_gaps(values: np.ndarray, observed: np.ndarray, slot_of_day: np.ndarray, train_end: int,
              rule: str) -> np.ndarray:
    """``values`` (T, C, H, W) with every missing value filled by ``rule`` (see the module's docstring)."""
    if rule not in GAP_FILLS:
        raise DataError(f"unknown gap rule {rule!r}; use one of {', '.join(GAP_FILLS)}")
    fallback = _cell_means(values, observed, train_end)
    if rule == "slot-mean":
        table = _slot_means(values, observed, slot_of_day, train_end, fallback)
        return np.where(observed, values, table[slot_of_day].astype(values.dtype))
    return _last_observation(values, observed, fallback)


def windows_with_history_gaps(observed: np.ndarray, starts: np.ndarray, history: int, horizon: int,
                              context_periods: list[int]) -> np.ndarray:
    """bool per window start: whether its history, or the earlier copies of its future that periodic
    context reads (``context_periods``: steps back, one per copy), holds a missing value."""
    incomplete = ~observed.reshape(observed.shape[0], -1).all(axis=1)
    before = np.concatenate([[0], np.cumsum(incomplete)])  # incomplete steps before each index

    def has_gap(first: np.ndarray, length: int) -> np.ndarray:
        return before[first + length] > before[first]

    gappy = has_gap(starts, history)
    for period in context_periods:
        gappy |= has_gap(starts + history - period, horizon)
    return gappy
