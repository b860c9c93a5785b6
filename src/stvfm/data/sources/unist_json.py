"""UniST's released JSON files (``<Dataset>_short.json``), reassembled into one series.

Layout, as UniST's ``DataLoader.data_load_single`` reads it:

- ``X_train`` / ``X_val`` / ``X_test``: ``[windows, periodic]`` where ``windows`` is
  (N, L, H, W): N stride-1 windows of L = history + horizon steps; ``periodic`` is
  UniST's own daily context, ignored here (stvfm builds its own from the series).
- ``timestamps``: ``{"train"|"val"|"test": ...}`` either (N, L, 2) pairs
  (weekday, slot of day) or, for Crowd/Cellular, (N, L) half-hour indices that map to
  ``((i % 336) // 48 + 2) % 7, i % 48``.

Windows are unrolled into one segment per split (checking that consecutive windows
overlap by L - 1 steps); segments are joined, dropping the L - 1 steps a split shares
with the previous one when the windows were cut from the whole series. The files carry
no dates, so the start is the first step on or after the spec's start date whose
weekday/slot sequence reproduces the file's; a file that fits none raises DataError.
"""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import numpy as np

from stvfm.data.registry import DatasetSpec
from stvfm.data.series import GridSeries
from stvfm.errors import DataError

SPLITS = ("train", "val", "test")
_MINUTES_PER_DAY = 24 * 60
_MINUTES_PER_WEEK = 7 * _MINUTES_PER_DAY
#: UniST's time embedding has 48 slots; finer data reuses half-hour (or hourly) slots.
_UNIST_SLOT_COUNTS = (48, 24)


def _split_windows(payload: dict, split: str, where: Path) -> np.ndarray:
    key = f"X_{split}"
    if key not in payload:
        raise DataError(f"{where}: missing key {key!r}; expected UniST's X_train/X_val/X_test/timestamps")
    entry = payload[key]
    try:
        windows = np.asarray(entry[0], dtype=np.float64)
        if windows.ndim == 3:  # a file without the periodic part: the entry is the windows
            windows = np.asarray(entry, dtype=np.float64)
    except (TypeError, ValueError, IndexError):
        raise DataError(f"{where}: {key} is not a rectangular array of windows") from None
    if windows.ndim == 4:
        windows = windows[:, :, None]
    if windows.ndim != 5 or windows.shape[0] == 0:
        raise DataError(f"{where}: {key} should hold (samples, steps, y, x) windows, got shape {windows.shape}")
    return windows


def _split_time_pairs(payload: dict, split: str, where: Path) -> np.ndarray:
    try:
        raw = np.asarray(payload["timestamps"][split], dtype=np.int64)
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{where}: missing or malformed timestamps[{split!r}]") from None
    if raw.ndim == 2:  # half-hour indices (Crowd, Cellular)
        return np.stack([((raw % 336) // 48 + 2) % 7, raw % 48], axis=-1)
    if raw.ndim == 3 and raw.shape[-1] == 2:
        return raw
    raise DataError(f"{where}: timestamps[{split!r}] should be (samples, steps[, 2]), got shape {raw.shape}")


def _unroll(windows: np.ndarray, where: Path, what: str) -> np.ndarray:
    """Stride-1 windows (N, L, ...) back to the (N + L - 1, ...) segment they were cut from."""
    if windows.shape[0] > 1 and not np.array_equal(windows[1:, :-1], windows[:-1, 1:]):
        raise DataError(f"{where}: {what} samples are not stride-1 windows of one series; cannot reassemble it")
    return np.concatenate([windows[0], windows[1:, -1]])


def _shares_overlap(segments: list[np.ndarray], overlap: int) -> list[bool]:
    """Whether each segment repeats the last ``overlap`` steps of its predecessor."""
    return [False] + [
        overlap > 0 and len(segment) > overlap and np.array_equal(previous[-overlap:], segment[:overlap])
        for previous, segment in pairwise(segments)
    ]


def _concatenate(segments: list[np.ndarray], cuts: list[bool], overlap: int) -> np.ndarray:
    return np.concatenate([segment[overlap:] if cut else segment for segment, cut in zip(segments, cuts, strict=True)])


def _align_start(pairs: np.ndarray, start_date: str, interval_minutes: int, where: Path) -> np.datetime64:
    """First step within a week of ``start_date`` whose weekday/slot sequence matches ``pairs``."""
    origin = np.datetime64(start_date, "D")
    origin_minute_of_week = int((origin.astype(np.int64) + 3) % 7) * _MINUTES_PER_DAY  # Monday = 0
    steps_per_week = _MINUTES_PER_WEEK // interval_minutes
    native_slots = _MINUTES_PER_DAY // interval_minutes
    slot_counts = dict.fromkeys((native_slots, *_UNIST_SLOT_COUNTS))
    total = len(pairs)
    prefix = pairs[: min(total, steps_per_week)]
    offsets = np.arange(steps_per_week, dtype=np.int32)[:, None]  # int32 halves the week x week grid
    minute_of_week = (origin_minute_of_week + (offsets + np.arange(len(prefix), dtype=np.int32)[None, :]) * interval_minutes) % _MINUTES_PER_WEEK
    weekday = minute_of_week // _MINUTES_PER_DAY
    minute_of_day = minute_of_week % _MINUTES_PER_DAY
    whole_week = (origin_minute_of_week + np.arange(total) * interval_minutes) % _MINUTES_PER_WEEK
    for slots_per_day in slot_counts:
        slot = minute_of_day * slots_per_day // _MINUTES_PER_DAY
        candidates = np.flatnonzero(((weekday == prefix[:, 0]) & (slot == prefix[:, 1])).all(axis=1))
        for offset in candidates:
            shifted = (whole_week + offset * interval_minutes) % _MINUTES_PER_WEEK
            full_weekday = shifted // _MINUTES_PER_DAY
            full_slot = (shifted % _MINUTES_PER_DAY) * slots_per_day // _MINUTES_PER_DAY
            if np.array_equal(full_weekday, pairs[:, 0]) and np.array_equal(full_slot, pairs[:, 1]):
                return origin.astype("datetime64[s]") + np.timedelta64(int(offset) * interval_minutes * 60, "s")
    raise DataError(
        f"{where}: the weekday/slot timestamps fit no start within a week of {start_date} "
        f"at {interval_minutes}-minute steps; the file is not this dataset or has gaps"
    )


def read_unist_json(path: Path, spec: DatasetSpec) -> GridSeries:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with open(path) as handle:
            payload = json.load(handle)
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: not a readable JSON file ({error})") from None
    if not isinstance(payload, dict):
        raise DataError(f"{path}: expected a JSON object with X_train/X_val/X_test/timestamps")
    window_sets = [_split_windows(payload, split, path) for split in SPLITS]
    window_length = window_sets[0].shape[1]
    value_segments, time_segments = [], []
    for split, windows in zip(SPLITS, window_sets, strict=True):
        pairs = _split_time_pairs(payload, split, path)
        if windows.shape[1:] != window_sets[0].shape[1:]:
            raise DataError(f"{path}: X_{split} windows {windows.shape[1:]} differ from X_train's {window_sets[0].shape[1:]}")
        if pairs.shape[:2] != windows.shape[:2]:
            raise DataError(f"{path}: timestamps[{split!r}] shape {pairs.shape[:2]} does not match X_{split} {windows.shape[:2]}")
        value_segments.append(_unroll(windows, path, f"X_{split}"))
        time_segments.append(_unroll(pairs, path, f"timestamps[{split!r}]"))
    overlap = window_length - 1
    cuts = _shares_overlap(value_segments, overlap)
    values = _concatenate(value_segments, cuts, overlap)
    pairs = _concatenate(time_segments, cuts, overlap)
    start = _align_start(pairs, spec.start, spec.interval_minutes, path)
    channels = values.shape[1]
    names = spec.channel_names if len(spec.channel_names) == channels else tuple(f"channel-{i}" for i in range(channels))
    timestamps = start + np.arange(len(values)) * np.timedelta64(spec.interval_minutes * 60, "s")
    return spec.series(values, timestamps, path, channel_names=names, attrs={"window_length": int(window_length)})
