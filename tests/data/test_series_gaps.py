"""Missing values in the data layer: NaN is kept as a gap, filled by the documented rule for inputs,
masked for targets, and never reaches a model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from stvfm.data.gaps import fill_gaps
from stvfm.data.prepared import prepare_series
from stvfm.data.scaling import MinMaxScaler
from stvfm.data.series import GridSeries
from stvfm.data.windows import ProtocolConfig
from stvfm.errors import ConfigError, DataError


def with_gaps(series: GridSeries, *where) -> GridSeries:
    values = series.values.copy()
    for index in where:
        values[index] = np.nan
    return GridSeries(series.name, values, series.timestamps, series.interval_minutes, series.channel_names)


def test_a_series_keeps_nan_as_missing_and_refuses_inf(series_factory):
    series = with_gaps(series_factory(), (5, 0, 1, 2))
    assert series.has_gaps and not series.observed[5, 0, 1, 2] and series.observed.sum() == series.values.size - 1
    assert not series_factory().has_gaps
    values = series_factory().values.copy()
    values[3, 0, 0, 0] = np.inf
    with pytest.raises(DataError, match="infinite"):
        GridSeries("x", values, series_factory().timestamps, 60, ("c0",))
    with pytest.raises(DataError, match="every value is missing"):
        GridSeries("x", np.full_like(values, np.nan), series_factory().timestamps, 60, ("c0",))


def test_the_scaler_fits_the_observed_values_only():
    values = np.array([np.nan, 2.0, 8.0, np.nan], dtype=np.float32)
    assert MinMaxScaler.fit(values) == MinMaxScaler(2.0, 8.0)
    assert MinMaxScaler.fit(torch.from_numpy(values)) == MinMaxScaler(2.0, 8.0)
    with pytest.raises(DataError, match="every value is missing"):
        MinMaxScaler.fit(np.full(3, np.nan))


def test_last_observation_is_carried_forward_and_a_leading_gap_takes_the_training_mean():
    values = np.array([np.nan, 1, 2, np.nan, np.nan, 5, np.nan], dtype=np.float32).reshape(7, 1, 1, 1)
    observed = ~np.isnan(values)
    filled = fill_gaps(values, observed, np.zeros(7, dtype=np.int64), train_end=5, rule="last")
    # training steps 0..4 observe 1 and 2: mean 1.5 before the first observation
    np.testing.assert_array_equal(filled.ravel(), [1.5, 1, 2, 2, 2, 5, 5])


def test_slot_mean_fills_with_the_cells_training_mean_of_that_slot():
    # slots 0, 1, 0, 1, ...; slot 0 observes 10 and 30 in training, slot 1 is never observed there
    values = np.array([10, np.nan, 30, np.nan, np.nan, np.nan], dtype=np.float32).reshape(6, 1, 1, 1)
    slots = np.array([0, 1, 0, 1, 0, 1])
    filled = fill_gaps(values, ~np.isnan(values), slots, train_end=4, rule="slot-mean")
    np.testing.assert_array_equal(filled.ravel(), [10, 20, 30, 20, 20, 20])  # slot 1 falls back to the cell mean


def test_a_cell_never_observed_in_training_takes_the_mean_of_all_observed_training_values():
    values = np.array([[1, np.nan], [3, np.nan], [5, 7]], dtype=np.float32).reshape(3, 1, 1, 2)
    for rule in ("last", "slot-mean"):
        filled = fill_gaps(values, ~np.isnan(values), np.zeros(3, dtype=np.int64), train_end=2, rule=rule)
        np.testing.assert_array_equal(filled[:, 0, 0, 1], [2, 2, 7])


def test_no_training_observation_at_all_is_a_data_error():
    values = np.array([np.nan, np.nan, 4], dtype=np.float32).reshape(3, 1, 1, 1)
    with pytest.raises(DataError, match="no observed value"):
        fill_gaps(values, ~np.isnan(values), np.zeros(3, dtype=np.int64), train_end=2, rule="last")


def test_an_unknown_gap_rule_is_refused():
    with pytest.raises(ConfigError, match="gap rule"):
        ProtocolConfig(gap_fill="zero")


@pytest.mark.parametrize("rule", ["last", "slot-mean", "skip"])
def test_windows_carry_masks_and_models_never_read_nan(rule, series_factory):
    series = with_gaps(series_factory(steps=200), (slice(150, 155),), (170, 0, 2, 1))
    data = prepare_series(series, ProtocolConfig(gap_fill=rule, daily_context=1))
    assert not np.isnan(data.values).any()
    np.testing.assert_array_equal(np.isnan(data.scaled_with_gaps()), ~series.observed)
    test = data.dataset("test")  # steps 170..199
    batch = default_collate([test[i] for i in range(len(test))])
    for key in ("x", "y", "daily"):
        assert torch.isfinite(batch[key]).all(), key
    starts = batch["start"].numpy()
    for row, start in enumerate(starts):
        np.testing.assert_array_equal(batch["y_observed"][row].numpy(), series.observed[start + 6:start + 12])
        np.testing.assert_array_equal(batch["x_observed"][row].numpy(), series.observed[start:start + 6])
    # brute force: a window has a history gap if its history or the copy of its future a day earlier misses a value
    complete = series.observed.reshape(200, -1).all(axis=1)
    for split, (begin, end) in data.splits.items():
        windows = data.dataset(split)
        candidates = [start for start in range(max(begin, 24 - 6), end - 11)]
        gappy = [start for start in candidates
                 if not complete[start:start + 6].all() or not complete[start + 6 - 24:start + 12 - 24].all()]
        assert windows.history_gap_windows == len(gappy)
        expected = [start for start in candidates if start not in gappy] if rule == "skip" else candidates
        np.testing.assert_array_equal(windows.window_starts, expected)
    assert data.dataset("test").history_gap_windows == 9  # 170..172 (context), 170 (history), 183..188 (context)


def test_a_series_without_gaps_gives_the_batches_it_always_gave(series_factory):
    data = prepare_series(series_factory(steps=200))
    assert data.observed is None and data.scaled_with_gaps() is data.values
    window = data.dataset("test")[0]
    assert set(window) == {"x", "y", "x_time", "y_time", "start"}
    assert data.describe()["missing_values"] == 0


def test_skip_with_no_complete_history_left_says_so(series_factory):
    series = with_gaps(series_factory(steps=200), *[(t, 0, 0, 0) for t in range(0, 200, 4)])
    with pytest.raises(DataError, match="every window of split 'train' has a missing value.*'skip'"):
        prepare_series(series, ProtocolConfig(gap_fill="skip"))
    assert prepare_series(series, ProtocolConfig(gap_fill="last")).describe()["missing_values"] == 50
