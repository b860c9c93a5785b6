"""Intervals that do not divide a day (7, 25 min): slot = minute of the day // interval, for every model."""

from __future__ import annotations

import numpy as np
import pytest

from stvfm.data.prepared import prepare_data
from stvfm.data.windows import ProtocolConfig
from stvfm.testing import write_synthetic_city
from stvfm.training.config import RunConfig
from stvfm.training.runner import fit


@pytest.mark.parametrize(("interval", "slots"), [(7, 206), (25, 58), (30, 48), (2880, 1)])
def test_every_slot_index_lies_below_slots_per_day(tmp_path, interval, slots):
    path = write_synthetic_city(tmp_path / "city.npz", days=max(4, 200 * interval // 1440), interval_minutes=interval)
    data = prepare_data(path, ProtocolConfig())
    assert data.slots_per_day == data.forecast_shape.slots_per_day == slots
    assert 0 <= data.time_features[:, 1].min() and data.time_features[:, 1].max() < slots


@pytest.mark.parametrize("interval", [7, 25])
@pytest.mark.parametrize("model", ["stid", "ha-day"])
def test_calendar_models_fit_data_whose_interval_does_not_divide_a_day(tmp_path, interval, model):
    path = write_synthetic_city(tmp_path / "city.npz", days=2, interval_minutes=interval)
    metrics = fit(RunConfig(model=model, dataset=str(path), out=str(tmp_path / "run"), max_epochs=1, batch_size=64,
                            limit_train_batches=2, progress=False, accelerator="cpu"))
    assert np.isfinite(metrics["rmse"])
