"""``stvfm predict``: forecasting past the end of a user's series with a trained checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from stvfm.data.batch import Batch, series_window
from stvfm.data.gaps import fill_gaps, windows_with_history_gaps
from stvfm.data.scaling import MinMaxScaler, descale_forecast
from stvfm.data.series import GridSeries, slots_per_day
from stvfm.data.sources.generic import read_generic, save_generic_npz
from stvfm.data.windows import time_features
from stvfm.errors import CheckpointError, ConfigError, DataError
from stvfm.shape import ForecastShape
from stvfm.training.checkpoints import checkpoint_model, load_checkpoint, recorded_run
from stvfm.training.folders import check_output


def future_batch(values: np.ndarray, timestamps: np.ndarray, interval_minutes: int,
                 shape: ForecastShape) -> Batch:
    """The one window whose history is the last P steps and whose future is unknown."""
    steps = values.shape[0]
    step = np.timedelta64(interval_minutes * 60, "s")
    future_times = timestamps[-1].astype("datetime64[s]") + step * np.arange(1, shape.horizon + 1)
    times = time_features(np.concatenate([timestamps.astype("datetime64[s]"), future_times]), interval_minutes)
    window = series_window(torch.from_numpy(values), torch.from_numpy(times), steps - shape.history, shape.history,
                           shape.horizon, slots_per_day(interval_minutes), shape.daily_context, shape.weekly_context)
    return {key: value.unsqueeze(0) for key, value in window.items()}


def predict(checkpoint_path: str | os.PathLike, input_path: str | os.PathLike,
                       output_path: str | os.PathLike, accelerator: str = "auto") -> GridSeries:
    """The horizon after the series' last step, on the accelerator when there is one (``auto``)."""
    check_output_path(output_path, inputs=(input_path, checkpoint_path))
    device = _device(accelerator)
    checkpoint = load_checkpoint(checkpoint_path)
    config = recorded_run(checkpoint, checkpoint_path)  # as ``test`` rebuilds it: an old record loads under both
    record = checkpoint["stvfm"].get("data")
    if not isinstance(record, dict) or not isinstance(record.get("interval_minutes"), int):
        raise CheckpointError(f"{checkpoint_path}: has no data record (grid, scaler, interval) to predict with; "
                              "it was written by an older stvfm: re-run `stvfm fit` to get one")
    try:
        shape = ForecastShape(**record["shape"])
        scaler = MinMaxScaler.from_dict(record["scaler"])
    except (TypeError, ValueError, KeyError) as error:
        raise CheckpointError(f"{checkpoint_path}: malformed data record ({type(error).__name__}: {str(error)[:160]})") from None
    series = read_generic(input_path).select_channels(config.channel)
    where = Path(input_path)
    if series.values.shape[1:] != (shape.channels, shape.height, shape.width):
        raise DataError(f"{where}: grid {series.values.shape[1:]} (channel, y, x) does not match the checkpoint's "
                        f"{(shape.channels, shape.height, shape.width)}")
    if series.interval_minutes != record["interval_minutes"]:
        raise DataError(f"{where}: interval {series.interval_minutes} min, but the model was trained on "
                        f"{record['interval_minutes']} min steps")
    day = series.slots_per_day
    needed = max(shape.history, shape.daily_context * day, shape.weekly_context * 7 * day)
    if series.values.shape[0] < needed:
        raise DataError(f"{where}: {series.values.shape[0]} steps, the model needs at least the last {needed}")
    model = checkpoint_model(checkpoint, checkpoint_path, config, shape).eval().to(device)
    scaled = _filled(np.ascontiguousarray(scaler.transform(series.values), dtype=np.float32), series, shape,
                     config.gap_fill, where)
    batch = {key: value.to(device) for key, value in
             future_batch(scaled, series.timestamps, series.interval_minutes, shape).items()}
    forecast = descale_forecast(model.predict(batch).float().cpu(), scaler.inverse_transform)[0].numpy()
    if not np.isfinite(forecast).all():
        raise CheckpointError(f"{checkpoint_path}: its weights give a forecast that is not finite numbers "
                              "(NaN or infinity); it was saved from a run that diverged")
    step = np.timedelta64(series.interval_minutes * 60, "s")
    timestamps = series.timestamps[-1].astype("datetime64[s]") + step * np.arange(1, shape.horizon + 1)
    return save_forecast(series, forecast, timestamps, output_path)


def check_output_path(output_path: str | os.PathLike, inputs: tuple[str | os.PathLike, ...] = ()) -> None:
    """A forecast is written as a generic npz file, never over what it reads (``inputs``): refuse another
    target before any work."""
    output = Path(output_path)
    if output.suffix.lower() != ".npz" or output.is_dir():
        raise ConfigError(f"{output}: the forecast is written in the generic npz format; give a file ending in .npz")
    check_output(output, inputs=inputs)


def save_forecast(series: GridSeries, forecast: np.ndarray, timestamps: np.ndarray,
                  output_path: str | os.PathLike) -> GridSeries:
    """The forecast after ``series`` as a generic npz file, written atomically."""
    result = GridSeries(name=f"{series.name}-forecast", values=forecast, timestamps=timestamps,
                        interval_minutes=series.interval_minutes, channel_names=series.channel_names,
                        source=str(output_path))
    save_generic_npz(result, output_path)
    return result


def _filled(scaled: np.ndarray, series: GridSeries, shape: ForecastShape, rule: str, where: Path) -> np.ndarray:
    """The input's missing values filled by the run's gap rule, its own steps standing in for the training
    split; under 'skip', a gap in the history the forecast reads is refused."""
    if not series.has_gaps:
        return scaled
    day = series.slots_per_day
    periods = [k * day for k in range(1, shape.daily_context + 1)] + \
              [k * 7 * day for k in range(1, shape.weekly_context + 1)]
    last_start = np.array([len(scaled) - shape.history])
    if rule == "skip" and windows_with_history_gaps(series.observed, last_start, shape.history, shape.horizon, periods)[0]:
        raise DataError(f"{where}: the steps the forecast reads have missing values, and the run's gap rule "
                        "'skip' forecasts only from complete history")
    slots = time_features(series.timestamps, series.interval_minutes)[:, 1]
    try:
        return fill_gaps(scaled, series.observed, slots, len(scaled), rule)
    except DataError as error:
        raise DataError(f"{where}: {error}") from None


def _device(accelerator: str) -> torch.device:
    """cpu, gpu (cuda) or auto: the GPU when there is one."""
    if accelerator == "cpu":
        return torch.device("cpu")
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError(f"accelerator {accelerator!r}: no CUDA GPU is available here")
        return torch.device("cuda")
    if accelerator == "auto":
        return torch.device("cpu")
    raise ConfigError(f"unknown accelerator {accelerator!r}; choose cpu, gpu or auto")
