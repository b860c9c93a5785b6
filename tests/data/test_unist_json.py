"""UniST's JSON layout, written synthetically in the shape its DataLoader reads."""

import json

import numpy as np
import pytest

from stvfm.data.loading import load_series
from stvfm.data.registry import get_dataset
from stvfm.errors import DataError

WINDOW = 12


def _series(steps, height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 500, size=(steps, height, width)).astype(float)


def _windows(values, begin, end):
    return np.stack([values[s : s + WINDOW] for s in range(begin, end - WINDOW + 1)])


def _write(path, splits_values, splits_times):
    payload = {"timestamps": {}}
    for split, windows in splits_values.items():
        periodic = np.zeros((len(windows), WINDOW, 1) + windows.shape[2:])
        payload[f"X_{split}"] = [windows.tolist(), periodic.tolist()]
        payload["timestamps"][split] = splits_times[split].tolist()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))
    return path


def test_crowd_windows_cut_from_whole_series(tmp_path):
    """Half-hour indices, windows over the whole series split by count: splits overlap by L-1."""
    steps, offset = 400, 7  # series starts 03:30 on the spec's start date (a Wednesday)
    values = _series(steps, 4, 5)
    half_hours = offset + np.arange(steps)  # UniST: index 0 is a Wednesday 00:00
    starts = np.arange(steps - WINDOW + 1)
    n_train, n_val = int(len(starts) * 0.7), int(len(starts) * 0.15)
    cut = {"train": starts[:n_train], "val": starts[n_train : n_train + n_val], "test": starts[n_train + n_val :]}
    windows = {split: np.stack([values[s : s + WINDOW] for s in idx]) for split, idx in cut.items()}
    times = {split: np.stack([half_hours[s : s + WINDOW] for s in idx]) for split, idx in cut.items()}
    spec = get_dataset("crowd")
    _write(tmp_path / "crowd" / spec.files[0].path, windows, times)
    series = load_series("crowd", root=tmp_path, channel=None)
    assert series.shape == (steps, 1, 4, 5)
    np.testing.assert_array_equal(series.values[:, 0], values.astype(np.float32))
    assert series.timestamps[0] == np.datetime64("2020-11-11T03:30")
    assert series.interval_minutes == 30


def test_traffic_pairs_with_splits_windowed_separately(tmp_path):
    """(weekday, half-hour slot) pairs on 5-minute data; each split windowed on its own piece."""
    steps = 600
    values = _series(steps, 3, 2, seed=1)
    stamps = np.datetime64("2022-03-05T01:10") + np.arange(steps) * np.timedelta64(5, "m")
    days = stamps.astype("datetime64[D]")
    pairs = np.stack([(days.astype(np.int64) + 3) % 7, (stamps - days).astype("timedelta64[m]").astype(np.int64) // 30], axis=1)
    bounds = {"train": (0, 420), "val": (420, 510), "test": (510, 600)}
    windows = {split: _windows(values, *b) for split, b in bounds.items()}
    times = {split: _windows(pairs, *b) for split, b in bounds.items()}
    path = _write(tmp_path / "trafficzz" / "TrafficZZ_short.json", windows, times)
    series = load_series("trafficzz", root=tmp_path)
    np.testing.assert_array_equal(series.values[:, 0], values.astype(np.float32))
    assert series.timestamps[0] == np.datetime64("2022-03-05T01:10")
    assert series.source == str(path)


def test_missing_file_says_where_and_where_from(tmp_path):
    with pytest.raises(DataError) as error:
        load_series("tdrive", root=tmp_path)
    message = str(error.value)
    assert "TDrive_short.json" in message and str(tmp_path / "tdrive") in message and "UniST" in message


def test_windows_that_do_not_overlap_are_rejected(tmp_path):
    values = _series(120, 2, 2)
    pairs = np.zeros((120, 2), dtype=np.int64)
    jumbled = {split: _windows(values, 0, 60)[::2] for split in ("train", "val", "test")}
    times = {split: _windows(pairs, 0, 60)[::2] for split in ("train", "val", "test")}
    _write(tmp_path / "bikenyc2" / "BikeNYC2_short.json", jumbled, times)
    with pytest.raises(DataError, match="BikeNYC2_short.json: X_train samples are not stride-1 windows"):
        load_series("bikenyc2", root=tmp_path)


def test_timestamps_that_fit_no_start_are_rejected(tmp_path):
    values = _series(100, 2, 2)
    pairs = np.stack([np.full(100, 3), np.arange(100) % 48], axis=1)  # weekday never changes
    bounds = {"train": (0, 70), "val": (70, 85), "test": (85, 100)}
    _write(
        tmp_path / "taxinyc2" / "TaxiNYC2_short.json",
        {s: _windows(values, *b) for s, b in bounds.items()},
        {s: _windows(pairs, *b) for s, b in bounds.items()},
    )
    with pytest.raises(DataError, match="TaxiNYC2_short.json: the weekday/slot timestamps fit no start"):
        load_series("taxinyc2", root=tmp_path)


def test_not_json(tmp_path):
    (tmp_path / "cellular").mkdir()
    (tmp_path / "cellular" / "Cellular_short.json").write_text("{not json")
    with pytest.raises(DataError, match="Cellular_short.json: not a readable JSON file"):
        load_series("cellular", root=tmp_path)
