"""ForecastMetrics streams to exactly what one numpy pass over the saved forecasts gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stvfm.errors import DataError
from stvfm.training.metrics import ForecastMetrics

LOW, HIGH = 3.0, 270.0  # a real-looking min/max of counts


def descale(scaled):
    return (scaled + 1) / 2 * (HIGH - LOW) + LOW


def test_streaming_equals_numpy_over_concatenated_forecasts():
    rng = np.random.default_rng(0)
    horizon = 3
    batches = [
        (rng.uniform(-1.3, 1.3, (size, horizon, 2, 4, 3)), rng.uniform(-1, 1, (size, horizon, 2, 4, 3)))
        for size in (5, 1, 4)
    ]
    metric = ForecastMetrics(descale, horizon)
    for prediction, target in batches:
        metric.update(torch.from_numpy(prediction).float(), torch.from_numpy(target).float())
    result = metric.compute()

    prediction = np.concatenate([p for p, _ in batches]).astype(np.float32).astype(np.float64)
    target = np.concatenate([t for _, t in batches]).astype(np.float32).astype(np.float64)
    error = descale(np.clip(prediction, -1, 1)) - descale(target)
    assert result["mae"] == pytest.approx(np.abs(error).mean(), rel=1e-12)
    assert result["rmse"] == pytest.approx(np.sqrt((error**2).mean()), rel=1e-12)
    per_step = error.transpose(1, 0, 2, 3, 4).reshape(horizon, -1)
    np.testing.assert_allclose(result["per_horizon"]["mae"], np.abs(per_step).mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(result["per_horizon"]["rmse"], np.sqrt((per_step**2).mean(axis=1)), rtol=1e-12)
    assert result["n_windows"] == 10 and result["n_points"] == error.size


def test_clamping_bounds_the_error_of_out_of_range_predictions():
    metric = ForecastMetrics(descale, horizon=1)
    metric.update(torch.full((1, 1, 1), 5.0), torch.full((1, 1, 1), 1.0))
    assert metric.compute()["mae"] == 0.0


def test_state_merges_like_ddp_sum():
    rng = np.random.default_rng(1)
    left, right, whole = (ForecastMetrics(descale, horizon=2) for _ in range(3))
    first = [torch.from_numpy(rng.uniform(-1, 1, (3, 2, 5))) for _ in range(2)]
    second = [torch.from_numpy(rng.uniform(-1, 1, (2, 2, 5))) for _ in range(2)]
    left.update(*first)
    right.update(*second)
    whole.update(*first)
    whole.update(*second)
    left.merge_state(right)
    merged, expected = left.compute(), whole.compute()
    assert merged.pop("per_horizon") == {key: pytest.approx(value) for key, value in expected.pop("per_horizon").items()}
    assert merged == pytest.approx(expected)


def test_wrong_horizon_and_empty_metrics_are_errors():
    metric = ForecastMetrics(descale, horizon=6)
    with pytest.raises(DataError, match="6"):
        metric.update(torch.zeros(2, 5, 1), torch.zeros(2, 5, 1))
    with pytest.raises(DataError, match="no forecasts"):
        metric.compute()
