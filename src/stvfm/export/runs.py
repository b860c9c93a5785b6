"""``stvfm test`` and ``stvfm predict`` from either a checkpoint file or an export folder.

An export is told from a checkpoint by its manifest (``bundle.is_export``); a checkpoint goes
to the training package's own functions, unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from stvfm.data.prepared import prepare_data
from stvfm.data.series import GridSeries
from stvfm.data.sources.generic import read_generic
from stvfm.errors import DataError
from stvfm.export import bundle
from stvfm.export.forecaster import load
from stvfm.training.config import protocol_for
from stvfm.training.inference import check_output_path, save_forecast
from stvfm.training.inference import predict as predict_checkpoint
from stvfm.training.runner import evaluate_checkpoint, evaluate_model


def test(source: str | os.PathLike, out: str | os.PathLike, dataset: str | None = None, data_root: str | None = None,
         precision: str | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Re-evaluate a checkpoint or an export on the test split (of ``dataset``, default the training one);
    the same metrics.json and predictions.npz as fit."""
    if not bundle.is_export(source):
        return evaluate_checkpoint(source, out, dataset=dataset, data_root=data_root, precision=precision,
                                   overwrite=overwrite)
    forecaster = load(source, precision=precision)
    config = forecaster.config
    config.out, config.dataset = str(out), dataset or config.dataset
    config.data_root = data_root or config.data_root
    data = prepare_data(config.dataset, protocol_for(config), root=config.data_root)
    if data.forecast_shape != forecaster.shape:
        raise DataError(f"dataset {config.dataset!r}: windows of shape {data.forecast_shape}, the export "
                        f"{source} forecasts {forecaster.shape}")
    return evaluate_model(config, data, forecaster.model, {"export": str(source)}, overwrite)


def predict(source: str | os.PathLike, input_path: str | os.PathLike, output_path: str | os.PathLike,
            accelerator: str = "auto") -> GridSeries:
    """The horizon after the end of the series in ``input_path`` (generic format), written to ``output_path``."""
    if not bundle.is_export(source):
        return predict_checkpoint(source, input_path, output_path, accelerator=accelerator)
    check_output_path(output_path, inputs=(input_path, source))
    forecaster = load(source, device={"gpu": "cuda"}.get(accelerator, accelerator))
    series = read_generic(input_path).select_channels(forecaster.config.channel)
    if series.interval_minutes != forecaster.interval_minutes:
        raise DataError(f"{input_path}: interval {series.interval_minutes} min, but the model was trained on "
                        f"{forecaster.interval_minutes} min steps")
    try:
        future, stamps = forecaster.forecast(series.values, series.timestamps)
    except DataError as error:
        raise DataError(f"{Path(input_path)}: {error}") from None
    return save_forecast(series, future, stamps, output_path)
