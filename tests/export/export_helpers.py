"""Tiny finished runs to export, and a run's test windows as a service receives them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stvfm.data.prepared import prepare_data
from stvfm.experiments.device_suite import model_options
from stvfm.training.config import RunConfig, protocol_for
from stvfm.training.runner import fit


def fit_tiny(model: str, city: Path, out: Path, **options) -> RunConfig:
    """One short epoch of ``model`` at its smallest size (as the device suite's quick mode builds it)."""
    config = RunConfig(model=model, dataset=str(city), out=str(out), model_options={**model_options(model, True), **options},
                       max_epochs=1, limit_train_batches=1, batch_size=8, progress=False, accelerator="cpu",
                       precision="32")
    fit(config, overwrite=True)
    return config


def window_inputs(forecaster) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """The run's test windows as a service receives them: the raw frames each forecast reads and their stamps."""
    data = prepare_data(forecaster.config.dataset, protocol_for(forecaster.config))
    starts = data.dataset("test").window_starts
    end = starts + forecaster.history
    values, stamps = data.series.values, data.series.timestamps
    return ([values[stop - forecaster.input_steps: stop] for stop in end],
            [stamps[stop - forecaster.input_steps: stop] for stop in end], starts)
