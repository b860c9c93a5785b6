import numpy as np
import pytest
import torch

from stvfm.data.windows import ProtocolConfig, WindowDataset, chronological_split, time_features, window_starts
from stvfm.errors import ConfigError


@pytest.mark.parametrize("length", [10, 30, 100, 4392, 2880])
def test_split_is_floor_floor_rest(length):
    bounds = chronological_split(length)
    assert bounds["train"] == (0, int(np.floor(0.7 * length + 1e-9)))
    assert bounds["val"] == (bounds["train"][1], bounds["train"][1] + int(np.floor(0.15 * length + 1e-9)))
    assert bounds["test"] == (bounds["val"][1], length)


def test_split_survives_float_error():
    # 0.7 * 30 = 20.999999999999996 in floating point
    assert chronological_split(30)["train"] == (0, 21)


def _dataset(series, split, **context):
    bounds = chronological_split(series.values.shape[0])[split]
    feats = time_features(series.timestamps, series.interval_minutes)
    return WindowDataset(series.values, feats, bounds, 6, 6, series.slots_per_day, **context)


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_windows_stay_inside_their_split(split, series_factory):
    series = series_factory(steps=100)
    begin, end = chronological_split(100)[split]
    dataset = _dataset(series, split)
    assert len(dataset) == (end - begin) - 6 - 6 + 1
    assert dataset.window_starts[0] == begin
    assert dataset.window_starts[-1] + 12 == end
    first, last = dataset[0], dataset[len(dataset) - 1]
    assert first["x"][:, 0, 0, 0].tolist() == list(range(begin, begin + 6))
    assert first["y"][:, 0, 0, 0].tolist() == list(range(begin + 6, begin + 12))
    assert last["y"][-1, 0, 0, 0].item() == end - 1
    assert first["start"].item() == begin


def test_batch_matches_the_model_contract(series_factory):
    series = series_factory(steps=24 * 30, channels=2, interval_minutes=60)
    dataset = _dataset(series, "test", daily_context=2, weekly_context=1)
    batch = torch.utils.data.default_collate([dataset[0], dataset[1], dataset[2]])
    assert batch["x"].shape == (3, 6, 2, 4, 3) and batch["x"].dtype == torch.float32
    assert batch["y"].shape == (3, 6, 2, 4, 3)
    assert batch["x_time"].shape == (3, 6, 2) and batch["x_time"].dtype == torch.long
    assert batch["start"].shape == (3,) and batch["start"].dtype == torch.long
    assert batch["daily"].shape == (3, 2, 6, 2, 4, 3)
    assert batch["weekly"].shape == (3, 1, 6, 2, 4, 3)
    future = batch["start"][0].item() + 6
    assert batch["daily"][0, 1, :, 0, 0, 0].tolist() == list(range(future - 48, future - 42))
    assert batch["weekly"][0, 0, 0, 0, 0, 0].item() == future - 168


def test_context_may_reach_before_split_but_not_before_series(series_factory):
    series = series_factory(steps=24 * 20, interval_minutes=60)
    train = _dataset(series, "train", weekly_context=1)
    assert train.window_starts[0] == 168 - 6  # first future step exactly one week in
    val = _dataset(series, "val", daily_context=3)
    begin = chronological_split(24 * 20)["val"][0]
    assert val.window_starts[0] == begin  # context reaches into train: the past, not leakage


def test_window_starts_empty_when_split_too_short():
    assert len(window_starts((0, 11), 6, 6)) == 0
    assert len(window_starts((0, 12), 6, 6)) == 1


def test_time_features_on_known_dates():
    stamps = np.array(["2016-01-01T00:00", "2016-01-01T23:30", "2016-01-04T12:00", "2014-04-01T05:00"], dtype="datetime64[s]")
    # 2016-01-01 Friday (4), 2016-01-04 Monday (0), 2014-04-01 Tuesday (1)
    assert time_features(stamps[:3], 30).tolist() == [[4, 0], [4, 47], [0, 24]]
    assert time_features(stamps[3:], 60).tolist() == [[1, 5]]
    assert time_features(stamps, 30).dtype == np.int64


@pytest.mark.parametrize(
    "options",
    [{"history": 0}, {"horizon": -1}, {"split": (0.5, 0.5, 0.5)}, {"split": (1.0, 0.0, 0.0)}, {"scaling": "test"},
     {"daily_context": -1}, {"steps": 0}],
)
def test_protocol_rejects_bad_options(options):
    with pytest.raises(ConfigError):
        ProtocolConfig(**options)
