"""Classical baselines: exact values on hand-made periodic series, ARIMA parity with statsmodels."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from stvfm.errors import ConfigError, DataError
from stvfm.models import ClassicalForecaster, ForecastShape, create_model

SLOTS = 4
SHAPE = ForecastShape(history=3, horizon=5, channels=2, height=2, width=3, slots_per_day=SLOTS)


def time_features(steps: int, first_weekday: int = 2) -> np.ndarray:
    step = np.arange(steps)
    return np.stack([(step // SLOTS + first_weekday) % 7, step % SLOTS], axis=1).astype(np.int64)


def windows(values: np.ndarray, features: np.ndarray, starts: list[int], shape: ForecastShape = SHAPE) -> dict[str, torch.Tensor]:
    """Windows cut from the series as ``stvfm.data.windows`` would, without depending on it."""
    history, future = shape.history, shape.horizon
    take = lambda array, offset, length: torch.from_numpy(np.stack([array[s + offset : s + offset + length] for s in starts]))  # noqa: E731
    return {
        "x": take(values, 0, history).float(),
        "y": take(values, history, future).float(),
        "x_time": take(features, 0, history).long(),
        "y_time": take(features, history, future).long(),
        "start": torch.tensor(starts),
    }


def weekly_periodic_series(weeks: int, seed: int = 0) -> np.ndarray:
    """Every (weekday, slot) its own random frame, repeated identically each week."""
    pattern = np.random.default_rng(seed).uniform(-1, 1, (7 * SLOTS, SHAPE.channels, SHAPE.height, SHAPE.width))
    return np.tile(pattern, (weeks, 1, 1, 1)).astype(np.float32)


@pytest.mark.parametrize("name", ["last", "ha-day", "ha-week", "arima", "linear-ar"])
def test_registered_as_classical(name):
    model = create_model(name, SHAPE, **({"workers": 1} if name == "arima" else {}))
    assert isinstance(model, ClassicalForecaster) and not model.trainable


def test_last_repeats_last_history_frame():
    values = np.random.default_rng(1).uniform(-1, 1, (20, 2, 2, 3)).astype(np.float32)
    features = time_features(20)
    model = create_model("last", SHAPE)
    model.fit_series(values, features, train_end=14)
    forecast = model(windows(values, features, [0, 7]))["forecast"]
    assert forecast.shape == (2, SHAPE.horizon, 2, 2, 3)
    for row, start in enumerate([0, 7]):
        for step in range(SHAPE.horizon):
            np.testing.assert_array_equal(forecast[row, step].numpy(), values[start + SHAPE.history - 1])


def test_ha_week_is_exact_on_a_weekly_periodic_series():
    values = weekly_periodic_series(weeks=3)
    features = time_features(len(values))
    model = create_model("ha-week", SHAPE)
    model.fit_series(values, features, train_end=2 * 7 * SLOTS)
    batch = windows(values, features, [50, 60, 70])
    np.testing.assert_allclose(model(batch)["forecast"].numpy(), batch["y"].numpy(), atol=1e-6)


def test_ha_day_averages_each_slot_over_the_days():
    values = weekly_periodic_series(weeks=2)
    features = time_features(len(values))
    model = create_model("ha-day", SHAPE)
    model.fit_series(values, features, train_end=7 * SLOTS)
    by_slot = values[: 7 * SLOTS].reshape(7, SLOTS, *values.shape[1:]).astype(np.float64).mean(axis=0)
    batch = windows(values, features, [9])
    expected = by_slot[batch["y_time"][0, :, 1].numpy()]
    np.testing.assert_allclose(model(batch)["forecast"][0].numpy(), expected, atol=1e-6)


def test_ha_unseen_slot_falls_back_to_the_cell_training_mean():
    values = weekly_periodic_series(weeks=2)
    features = time_features(len(values), first_weekday=0)
    train_end = 3 * SLOTS  # Monday..Wednesday only
    model = create_model("ha-week", SHAPE)
    model.fit_series(values, features, train_end)
    saturday = torch.tensor([[5, 1]]).expand(SHAPE.horizon, 2)[None]
    forecast = model({"y_time": saturday})["forecast"]
    np.testing.assert_allclose(forecast[0, 0].numpy(), values[:train_end].astype(np.float64).mean(axis=0), atol=1e-6)


def test_ha_tables_survive_a_state_dict_round_trip():
    values = weekly_periodic_series(weeks=2)
    features = time_features(len(values))
    fitted = create_model("ha-week", SHAPE)
    fitted.fit_series(values, features, train_end=7 * SLOTS)
    restored = create_model("ha-week", SHAPE)
    restored.load_state_dict(fitted.state_dict())
    batch = windows(values, features, [3, 30])
    torch.testing.assert_close(restored(batch)["forecast"], fitted(batch)["forecast"])


def test_unfitted_ha_refuses_to_forecast():
    with pytest.raises(ConfigError, match="not fitted"):
        create_model("ha-day", SHAPE)({"y_time": torch.zeros(1, SHAPE.horizon, 2, dtype=torch.long)})


def test_fit_rejects_out_of_range_slots():
    values = weekly_periodic_series(weeks=1)
    features = time_features(len(values))
    features[0, 1] = SLOTS
    with pytest.raises(DataError, match="slot"):
        create_model("ha-day", SHAPE).fit_series(values, features, train_end=10)


# ---------------------------------------------------------------------- ARIMA

ARIMA_SHAPE = ForecastShape(history=3, horizon=4, channels=1, height=1, width=2, slots_per_day=SLOTS)


def arma_series(steps: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.normal(scale=0.1, size=steps)
    series = np.zeros(steps)
    for t in range(2, steps):
        series[t] = 0.05 + 0.6 * series[t - 1] - 0.2 * series[t - 2] + noise[t] + 0.3 * noise[t - 1]
    return series


def test_arima_forecasts_match_statsmodels_refiltered_at_each_origin():
    from statsmodels.tsa.arima.model import ARIMA

    steps, train_end = 140, 100
    cells = np.stack([arma_series(steps, seed=3), arma_series(steps, seed=4)], axis=1)
    values = cells.reshape(steps, 1, 1, 2).astype(np.float32)
    features = time_features(steps)
    model = create_model("arima", ARIMA_SHAPE, workers=1)
    model.fit_series(values, features, train_end)
    starts = [5, train_end - 2, steps - ARIMA_SHAPE.history - ARIMA_SHAPE.horizon]
    forecast = model(windows(values, features, starts, ARIMA_SHAPE))["forecast"]
    for cell in range(2):
        series = values[:, 0, 0, cell].astype(np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results = ARIMA(series[:train_end], order=(2, 0, 1), trend="c").fit()
        for row, start in enumerate(starts):
            origin = start + ARIMA_SHAPE.history - 1
            expected = results.apply(series[: origin + 1]).forecast(ARIMA_SHAPE.horizon)
            np.testing.assert_allclose(forecast[row, :, 0, 0, cell].numpy(), expected, atol=1e-6)


def test_arima_two_workers_equal_one_and_round_trip():
    steps = 80
    values = np.stack([arma_series(steps, seed=5), np.full(steps, -1.0)], axis=1).reshape(steps, 1, 1, 2).astype(np.float32)
    features = time_features(steps)
    serial = create_model("arima", ARIMA_SHAPE, workers=1)
    serial.fit_series(values, features, train_end=60)
    parallel = create_model("arima", ARIMA_SHAPE, workers=2)
    parallel.fit_series(values, features, train_end=60)
    torch.testing.assert_close(parallel.forecast_table, serial.forecast_table)
    assert torch.all(serial.forecast_table[..., 1] == -1.0)  # constant training cell forecasts its constant
    restored = create_model("arima", ARIMA_SHAPE, workers=1)
    restored.load_state_dict(serial.state_dict())
    batch = windows(values, features, [0, 40, steps - 7], ARIMA_SHAPE)
    torch.testing.assert_close(restored(batch)["forecast"], serial(batch)["forecast"])


def test_arima_refuses_origins_beyond_its_series_and_bad_orders():
    steps = 30
    values = np.full((steps, 1, 1, 2), 0.5, dtype=np.float32)
    features = time_features(steps)
    model = create_model("arima", ARIMA_SHAPE, workers=1)
    model.fit_series(values, features, train_end=20)
    batch = windows(values, features, [0], ARIMA_SHAPE)
    batch["start"] = torch.tensor([steps])
    with pytest.raises(DataError, match="outside"):
        model(batch)
    with pytest.raises(ConfigError, match="trend"):
        create_model("arima", ARIMA_SHAPE, order=(1, 1, 1))


# ------------------------------------------------------ seasonal linear autoregression


def seasonal_ar_series(steps: int, seed: int) -> np.ndarray:
    """Per cell an AR(1) with its own coefficient and a per-slot mean, plus noise."""
    rng = np.random.default_rng(seed)
    cells = SHAPE.channels * SHAPE.height * SHAPE.width
    coefficient, profile = rng.uniform(0.2, 0.8, cells), rng.uniform(-0.5, 0.5, (SLOTS, cells))
    series = np.zeros((steps, cells))
    for t in range(1, steps):
        series[t] = coefficient * series[t - 1] + profile[t % SLOTS] + rng.normal(scale=0.05, size=cells)
    return series.reshape(steps, SHAPE.channels, SHAPE.height, SHAPE.width).astype(np.float32)


def least_squares_forecasts(values, features, train_end, starts, seasonality="day"):
    """The same fit written out with numpy's lstsq, one cell at a time, on complete training windows only."""
    history, horizon = SHAPE.history, SHAPE.horizon
    cells = values.reshape(len(values), -1).astype(np.float64)

    def design(window_starts, cell):
        past = np.stack([cells[s : s + history, cell] for s in window_starts])
        weekday, slot = features[np.asarray(window_starts) + history - 1].T
        seasonal = {"none": np.ones((len(past), 1)), "day": np.eye(SLOTS)[slot], "week": np.eye(7 * SLOTS)[weekday * SLOTS + slot]}
        return np.concatenate([past, seasonal[seasonality]], axis=1)

    train_starts = range(train_end - history - horizon + 1)
    forecasts = np.zeros((len(starts), horizon, cells.shape[1]))
    for cell in range(cells.shape[1]):
        targets = np.stack([cells[s + history : s + history + horizon, cell] for s in train_starts])
        inputs = design(train_starts, cell)
        complete = ~(np.isnan(inputs).any(axis=1) | np.isnan(targets).any(axis=1))
        coefficients = np.linalg.lstsq(inputs[complete], targets[complete], rcond=None)[0]
        forecasts[:, :, cell] = design(starts, cell) @ coefficients
    return forecasts.reshape(len(starts), horizon, *values.shape[1:])


@pytest.mark.parametrize("seasonality", ["none", "day", "week"])
def test_linear_ar_matches_numpy_least_squares_per_cell(seasonality):
    values = seasonal_ar_series(200, seed=3)
    features = time_features(len(values))
    model = create_model("linear-ar", SHAPE, ridge=0.0, seasonality=seasonality)
    model.fit_series(values, features, train_end=180)
    starts = [180, 185, 191]
    expected = least_squares_forecasts(values, features, 180, starts, seasonality)
    np.testing.assert_allclose(model(windows(values, features, starts))["forecast"].numpy(), expected, atol=1e-4)


def test_linear_ar_leaves_windows_with_gaps_out_of_the_fit():
    values = seasonal_ar_series(80, seed=4)
    values[[10, 31], 0, 1, 2] = np.nan  # two gaps in one cell's training split
    features = time_features(len(values))
    model = create_model("linear-ar", SHAPE, ridge=0.0, seasonality="day")
    model.fit_series(values, features, train_end=60)
    starts = [60, 70]
    forecast = model(windows(values, features, starts))["forecast"].numpy()
    np.testing.assert_allclose(forecast, least_squares_forecasts(values, features, 60, starts), atol=1e-4)


def test_linear_ar_cell_never_observed_in_training_forecasts_the_training_mean():
    values = seasonal_ar_series(80, seed=7)
    values[:60, 1, 0, 0] = np.nan
    features = time_features(len(values))
    model = create_model("linear-ar", SHAPE)
    model.fit_series(values, features, train_end=60)
    forecast = model(windows(np.nan_to_num(values), features, [62]))["forecast"]
    expected = np.nanmean(values[:60].astype(np.float64))
    np.testing.assert_allclose(forecast[0, :, 1, 0, 0].numpy(), expected, atol=1e-6)
    assert torch.isfinite(forecast).all()
    with pytest.raises(DataError, match="no observed value"):
        model.fit_series(np.full_like(values, np.nan), features, train_end=60)


def test_linear_ar_shared_map_equals_per_cell_maps_when_cells_are_copies():
    one_cell = seasonal_ar_series(80, seed=5)[:, :1, :1, :1]
    values = np.tile(one_cell, (1, SHAPE.channels, SHAPE.height, SHAPE.width))
    features = time_features(len(values))
    batch = windows(values, features, [62, 70])
    forecasts = []
    for per_cell in (True, False):
        model = create_model("linear-ar", SHAPE, per_cell=per_cell, ridge=0.0)
        model.fit_series(values, features, train_end=60)
        forecasts.append(model(batch)["forecast"])
    torch.testing.assert_close(forecasts[0], forecasts[1], atol=1e-4, rtol=1e-4)
    assert create_model("linear-ar", SHAPE, per_cell=False).fitted_by == "least squares over all cells"


def test_linear_ar_round_trips_and_refuses_short_or_unfitted_use():
    values = seasonal_ar_series(40, seed=6)
    features = time_features(len(values))
    fitted = create_model("linear-ar", SHAPE)
    fitted.fit_series(values, features, train_end=30)
    restored = create_model("linear-ar", SHAPE)
    restored.load_state_dict(fitted.state_dict())
    batch = windows(values, features, [30, 31])
    torch.testing.assert_close(restored(batch)["forecast"], fitted(batch)["forecast"])
    with pytest.raises(ConfigError, match="not fitted"):
        create_model("linear-ar", SHAPE)(batch)
    with pytest.raises(DataError, match="no window"):
        create_model("linear-ar", SHAPE).fit_series(values, features, train_end=SHAPE.history + SHAPE.horizon - 1)
    with pytest.raises(ConfigError, match="ridge"):
        create_model("linear-ar", SHAPE, ridge=-1.0)
    with pytest.raises(ConfigError, match="seasonality"):
        create_model("linear-ar", SHAPE, seasonality="month")
