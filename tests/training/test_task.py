"""The test pass de-scales each forecast once, and what it saves is exactly what it scored."""

from __future__ import annotations

import torch

from stvfm.models import create_model
from stvfm.testing import make_batch
from stvfm.training.task import ForecastTask


def test_the_test_step_descales_once_and_saves_what_it_scores(tiny_shape):
    calls = []

    def inverse(values: torch.Tensor) -> torch.Tensor:
        calls.append(values.dtype)
        return values * 50.0 + 50.0

    torch.manual_seed(0)
    task = ForecastTask(create_model("stid", tiny_shape), inverse)
    task.collect_predictions = True
    task.on_test_epoch_start()
    batches = [make_batch(tiny_shape, 3), make_batch(tiny_shape, 2)]
    batches[1]["y_observed"] = torch.rand(batches[1]["y"].shape) > 0.3
    for index, batch in enumerate(batches):
        task.test_step(batch, index)
    assert calls == [torch.float32] * 4  # per batch: the forecast once, the target once
    prediction, target, _ = task.collected_predictions()
    observed = ~torch.isnan(torch.from_numpy(target))
    error = (torch.from_numpy(prediction).double() - torch.from_numpy(target).double())[observed]
    scored = task.test_metrics.compute()
    assert scored["n_points"] == int(observed.sum()) < target.size
    assert abs(scored["mae"] - float(error.abs().mean())) < 1e-4
    assert abs(scored["rmse"] - float(error.square().mean().sqrt())) < 1e-4
