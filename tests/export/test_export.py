"""Exports: every registered model's forecasts equal its run's saved predictions bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from export_helpers import fit_tiny, window_inputs

import stvfm
from stvfm.experiments.device_suite import model_options
from stvfm.export.writer import export_run
from stvfm.models.registry import build_config, list_models

#: The test loader's batch size (4 x the training batch of ``fit_tiny``): the same batches, the same sums.
EVAL_BATCH = 32


@pytest.mark.parametrize("model", [entry.name for entry in list_models()])
def test_export_forecasts_equal_the_runs_saved_predictions(model, city, long_city, tmp_path):
    periodic = build_config(model, model_options(model, True))
    fit_tiny(model, long_city if periodic.daily_context or periodic.weekly_context else city, tmp_path / "run")
    export_run(tmp_path / "run", tmp_path / "export")
    forecaster = stvfm.load(tmp_path / "export")
    histories, stamps, starts = window_inputs(forecaster)
    saved = np.load(tmp_path / "run" / "predictions.npz")
    assert np.array_equal(starts, saved["start"])
    futures = [forecaster.forecast_batch(histories[i:i + EVAL_BATCH], stamps[i:i + EVAL_BATCH])
               for i in range(0, len(histories), EVAL_BATCH)]
    prediction = np.concatenate([future for future, _ in futures])
    assert prediction.dtype == saved["prediction"].dtype and np.array_equal(prediction, saved["prediction"])
    first_future = np.concatenate([times for _, times in futures])[:, 0]
    assert np.array_equal(first_future.astype(str), saved["first_step_time"])
