"""What a finished run leaves: the test pass, metrics.json and predictions.npz.

Fit (classical and learned) and test share ``run_test`` and ``write_outputs``, so every run's outputs
are made one way.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from stvfm.atomic import atomic_path, write_json_atomic
from stvfm.data.datamodule import GridDataModule
from stvfm.data.prepared import PreparedData
from stvfm.errors import RunError
from stvfm.models.base import Forecaster
from stvfm.training.config import RunConfig
from stvfm.training.folders import IN_PROGRESS_NAME
from stvfm.training.scoring import protocol_card, window_errors
from stvfm.training.task import ForecastTask


def parameter_counts(model: torch.nn.Module) -> dict[str, int]:
    """Trainable and frozen parameter counts, for the record."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return {"trainable": trainable, "frozen": frozen}


def model_description(model: Forecaster) -> dict[str, Any]:
    """Parameter counts and what the model says it used (``Forecaster.describe``), so random-init results are named so."""
    return {"parameters": parameter_counts(model), **model.describe()}


def data_record(data: PreparedData) -> dict[str, Any]:
    """What ``predict`` needs to rebuild the model and de-scale without the training data."""
    return {
        "shape": asdict(data.forecast_shape),
        "scaler": data.scaler.to_dict(),
        "interval_minutes": data.series.interval_minutes,
        "channel_names": list(data.series.channel_names),
    }


def series_period(data: PreparedData) -> dict[str, Any]:
    """The span of the series the run read (after the protocol's period and steps): two spans of one
    file (BikeNYC's 183 and 60 days) are two results that no table may pool."""
    stamps = data.series.timestamps.astype("datetime64[m]")
    return {"start": str(stamps[0]), "end": str(stamps[-1]), "steps": len(stamps)}


def metrics_payload(config: RunConfig, data: PreparedData, model: Forecaster, results: dict[str, Any],
                     split: str, extra: dict[str, Any]) -> dict[str, Any]:
    """metrics.json: the results, how they were computed (the protocol card), what produced them (model,
    weights, scaling) and every setting."""
    return {
        "dataset": data.series.name,
        "period": series_period(data),
        "channel": config.channel,
        "split": split,
        "model": config.model,
        "mae": results["mae"],
        "rmse": results["rmse"],
        "per_horizon": results["per_horizon"],
        "per_window": results["per_window"],
        "n_windows": results["n_windows"],
        "n_points": results["n_points"],
        "protocol_card": protocol_card(config.scaling, config.gap_fill, results,
                                       windows_with_history_gaps=data.dataset(split).history_gap_windows),
        "seed": config.seed,
        "scaling": data.scaler.to_dict() | {"fit_on": config.scaling},
        **model_description(model),
        **extra,
        "settings": config.to_dict(),
    }


def save_predictions(path: Path, data: PreparedData, predictions: np.ndarray, targets: np.ndarray, starts: np.ndarray,
                     first_step: np.ndarray) -> None:
    """Test forecasts and truths in original units (a truth that was missing is NaN), for plots and
    metric re-computation (``stvfm score``)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, prediction=predictions, target=targets, start=starts, first_step_time=first_step,
                                channel_names=np.array(data.series.channel_names))


def run_test(trainer: L.Trainer, task: ForecastTask, module: GridDataModule, ckpt_path: str | None) -> dict[str, Any]:
    """One pass over the test split, collecting the forecasts; the pooled metrics."""
    task.collect_predictions = True
    trainer.test(task, datamodule=module, ckpt_path=ckpt_path, verbose=False)
    return task.test_results


def write_outputs(config: RunConfig, data: PreparedData, task: ForecastTask, results: dict[str, Any],
                  extra: dict[str, Any]) -> dict[str, Any]:
    """After the test pass: predictions.npz and metrics.json and the folder marked finished; the metrics payload."""
    out = Path(config.out)
    figures = [results["mae"], results["rmse"], *results["per_horizon"]["mae"], *results["per_horizon"]["rmse"]]
    if not all(math.isfinite(value) for value in figures):
        raise RunError(f"{out}: the test metrics are not finite numbers (the forecasts hold NaN or infinity: "
                       "training diverged, e.g. at too high a learning rate); no result was written")
    predictions, targets, starts = task.collected_predictions()
    first_step = data.series.timestamps[starts + data.protocol.history].astype("datetime64[s]").astype(str)
    save_predictions(out / "predictions.npz", data, predictions, targets, starts, first_step)
    per_window = window_errors(predictions, targets, starts, first_step, data.series.interval_minutes)
    payload = metrics_payload(config, data, task.model, results | {"per_window": per_window}, "test", extra)
    write_json_atomic(out / "metrics.json", payload)
    (out / IN_PROGRESS_NAME).unlink(missing_ok=True)
    return payload
