"""Figures from run folders: forecast maps, error maps, per-horizon errors and loss curves.

Figures are built as bare ``matplotlib.figure.Figure`` objects, which render PNGs with Agg and
touch no pyplot state, so plotting works headless and from several threads.
"""

from __future__ import annotations

import csv
import warnings
import zipfile
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from stvfm.atomic import atomic_path
from stvfm.errors import DataError
from stvfm.reports.tables import load_metrics
from stvfm.training.scoring import window_errors

VALUE_COLOURS = "viridis"
ERROR_COLOURS = "magma"
PANEL_INCHES = 1.3


def plots_dir(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Where a run's figures go unless told otherwise: ``RUN/plots``."""
    return Path(out_dir) if out_dir is not None else Path(run_dir) / "plots"


def load_predictions(run_dir: str | Path) -> dict[str, np.ndarray]:
    """``predictions.npz`` of a run, checked so every plot can trust its shapes."""
    path = Path(run_dir) / "predictions.npz"
    if not path.is_file():
        raise DataError(f"{path}: no predictions.npz (run `stvfm fit` or `stvfm evaluate` first)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise DataError(f"{path}: not a readable .npz file ({error})") from None
    missing = [key for key in ("prediction", "target", "first_step_time") if key not in arrays]
    if missing:
        raise DataError(f"{path}: missing array(s) {', '.join(missing)}")
    prediction, target = arrays["prediction"], arrays["target"]
    if prediction.ndim != 5 or prediction.shape != target.shape or prediction.shape[0] == 0:
        raise DataError(f"{path}: prediction {prediction.shape} and target {target.shape} must be the same "
                        "non-empty (windows, steps, channels, height, width)")
    if len(arrays["first_step_time"]) != prediction.shape[0]:
        raise DataError(f"{path}: {len(arrays['first_step_time'])} first_step_time entries for "
                        f"{prediction.shape[0]} windows")
    try:
        arrays["first_step_time"] = arrays["first_step_time"].astype("datetime64[s]")
    except ValueError as error:
        raise DataError(f"{path}: first_step_time is not ISO timestamps ({error})") from None
    return arrays


def _channel_names(arrays: dict[str, np.ndarray]) -> list[str]:
    channels = arrays["prediction"].shape[2]
    names = [str(name) for name in arrays.get("channel_names", [])]
    return names if len(names) == channels else [f"channel {index}" for index in range(channels)]


def _step_interval(arrays: dict[str, np.ndarray]) -> np.timedelta64 | None:
    """Series step length, inferred from two windows' start indices and times (not stored)."""
    starts = arrays.get("start")
    if starts is None or len(starts) < 2 or starts[1] == starts[0]:
        return None
    times = arrays["first_step_time"]
    return (times[1] - times[0]) // int(starts[1] - starts[0])


def _format_time(time: np.datetime64) -> str:
    return str(time.astype("datetime64[m]")).replace("T", " ")


def pick_windows(target: np.ndarray, count: int) -> list[int]:
    """Fullest window (largest total target) in each of ``count`` equal stretches of the test period."""
    totals = np.nansum(target.reshape(len(target), -1), axis=1)  # a missing target (NaN) adds nothing
    stretches = np.array_split(np.arange(len(target)), min(count, len(target)))
    return [int(stretch[np.argmax(totals[stretch])]) for stretch in stretches]


def _save(fig: Figure, out_png: str | Path) -> Path:
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return Path(out_png)


def _heatmap(ax: Axes, grid: np.ndarray, colours: str, vmin: float, vmax: float):
    ax.set_xticks([])
    ax.set_yticks([])
    return ax.imshow(grid, cmap=colours, vmin=vmin, vmax=vmax, interpolation="nearest")


def plot_forecast_grids(run_dir: str | Path, out_png: str | Path, windows: int = 3, title: str | None = None) -> Path:
    """Truth, forecast and |error| maps per forecast step for a few busy test windows."""
    arrays = load_predictions(run_dir)
    return _save(forecast_grids_figure(arrays, pick_windows(arrays["target"], windows), title or Path(run_dir).name),
                 out_png)


def forecast_grids_figure(arrays: dict[str, np.ndarray], chosen: list[int], title: str) -> Figure:
    """Truth, forecast and |error| rows per forecast step for the test windows ``chosen`` of one run's predictions."""
    prediction, target = arrays["prediction"], arrays["target"]
    _, steps, channels, height, width = prediction.shape
    names = _channel_names(arrays)
    interval = _step_interval(arrays)
    rows = len(chosen) * channels * 3
    fig = Figure(figsize=(PANEL_INCHES * steps + 1.5, PANEL_INCHES * rows * height / width + 0.6),
                 layout="constrained")
    axes = fig.subplots(rows, steps, squeeze=False)
    row = 0
    for window in chosen:
        first_time = arrays["first_step_time"][window]
        for channel in range(channels):
            truth, forecast = target[window, :, channel], prediction[window, :, channel]
            error = np.abs(forecast - truth)
            vmin = float(min(np.nanmin(truth, initial=np.inf), forecast.min()))
            vmax = float(max(np.nanmax(truth, initial=-np.inf), forecast.max()))
            label = _format_time(first_time) + (f"\n{names[channel]}" if channels > 1 else "")
            panels = (("truth", truth, VALUE_COLOURS, vmin, vmax), ("forecast", forecast, VALUE_COLOURS, vmin, vmax),
                      ("|error|", error, ERROR_COLOURS, 0.0, float(np.nanmax(error, initial=0.0))))
            for offset, (kind, maps, colours, low, high) in enumerate(panels):
                for step in range(steps):
                    image = _heatmap(axes[row + offset, step], maps[step], colours, low, high)
                axes[row + offset, 0].set_ylabel(f"{label}\n{kind}", fontsize=8)
                if kind != "truth":  # truth shares the forecast's scale, so one bar serves both rows
                    bar_rows = axes[row:row + 2] if kind == "forecast" else axes[row + 2:row + 3]
                    fig.colorbar(image, ax=bar_rows.ravel().tolist(), shrink=0.9)
            for step in range(steps):
                stamp = f"\n{_format_time(first_time + step * interval)}" if interval is not None else ""
                axes[row, step].set_title(f"t+{step + 1}{stamp}", fontsize=8)
            row += 3
    fig.suptitle(f"{title}: test forecasts (original units)")
    return fig


def plot_error_map(run_dir: str | Path, out_png: str | Path, title: str | None = None) -> Path:
    """Mean absolute error per cell over all observed test targets, to show where a model fails."""
    return _save(error_map_figure(load_predictions(run_dir), title or Path(run_dir).name), out_png)


def error_map_figure(arrays: dict[str, np.ndarray], title: str) -> Figure:
    """Mean absolute error per cell over the observed test targets of one run's predictions."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a cell never observed is NaN (blank), not an error
        error = np.nanmean(np.abs(arrays["prediction"] - arrays["target"]), axis=(0, 1))
    names = _channel_names(arrays)
    channels, height, width = error.shape
    fig = Figure(figsize=(3.2 * channels + 0.6, 3.2 * height / width + 0.8), layout="constrained")
    axes = fig.subplots(1, channels, squeeze=False)[0]
    for channel, ax in enumerate(axes):
        image = _heatmap(ax, error[channel], ERROR_COLOURS, 0.0, float(np.nanmax(error[channel], initial=0.0)))
        ax.set_title(names[channel], fontsize=9)
        fig.colorbar(image, ax=ax, shrink=0.9)
    fig.suptitle(f"{title}: mean absolute error per cell")
    return fig


def _run_label(payload: dict) -> str:
    name = payload["model"] + (f" ({payload['variant']})" if payload.get("variant") else "")
    weights = (payload.get("weights") or {}).get("label")
    return f"{name}, {weights}" if weights else name


def plot_horizon_curves(run_dirs: list[str | Path], out_png: str | Path, labels: list[str] | None = None) -> Path:
    """Per-step RMSE and MAE of several runs on shared axes, to compare how errors grow."""
    return _save(horizon_curves_figure(run_dirs, labels), out_png)


def horizon_curves_figure(run_dirs: list[str | Path], labels: list[str] | None = None) -> Figure:
    """Per-step test RMSE and MAE of several runs on shared axes."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    rmse_ax, mae_ax = fig.subplots(1, 2)
    for index, run_dir in enumerate(run_dirs):
        payload = load_metrics(run_dir)
        per_horizon = payload.get("per_horizon") or {}
        if not per_horizon.get("rmse") or not per_horizon.get("mae"):
            raise DataError(f"{Path(run_dir) / 'metrics.json'}: no per_horizon rmse/mae lists")
        for ax, metric in ((rmse_ax, "rmse"), (mae_ax, "mae")):
            values = per_horizon[metric]
            label = labels[index] if labels else _run_label(payload)
            ax.plot(range(1, len(values) + 1), values, marker="o", label=label)
    for ax, metric in ((rmse_ax, "RMSE"), (mae_ax, "MAE")):
        ax.set_xlabel("forecast step")
        ax.set_ylabel(f"{metric} (original units)")
        ax.set_title(f"test {metric} per step")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    mae_ax.legend(fontsize=8)
    return fig


def plot_window_errors(run_dirs: list[str | Path], out_png: str | Path, labels: list[str] | None = None) -> Path:
    """Each test window's error over the test period for several runs, and each run's gap to the first."""
    names = labels or [_run_label(load_metrics(run_dir)) for run_dir in run_dirs]
    return _save(window_errors_figure([(name, load_predictions(run_dir)) for name, run_dir in zip(names, run_dirs, strict=True)]),
                 out_png)


def window_errors_figure(runs: list[tuple[str, dict[str, np.ndarray]]]) -> Figure:
    """Test RMSE of each window against its first forecast time, per (label, saved forecasts) run, and
    below, each run's per-window MSE minus the first run's: where a pooled gap comes from (often a few
    busy windows), the series the paired test in ``stvfm compare`` judges."""
    fig = Figure(figsize=(10, 5.5), layout="constrained")
    error_ax, gap_ax = fig.subplots(2, 1, sharex=True)
    first = None
    for index, (label, arrays) in enumerate(runs):
        times = arrays["first_step_time"]
        per_window = window_errors(arrays["prediction"], arrays["target"], times, times, 0)  # window order: time
        mse = np.array([np.nan if value is None else value for value in per_window["mse"]])
        times = np.sort(times)
        if first is None:
            first = (times, mse)
        elif not np.array_equal(times, first[0]):
            raise DataError(f"{label}: tested on other windows than {runs[0][0]}; its errors cannot be set beside them")
        error_ax.plot(times, np.sqrt(mse), linewidth=0.9, label=label)
        if index:
            gap_ax.plot(times, mse - first[1], linewidth=0.9, label=label, color=f"C{index}")
    gap_ax.axhline(0.0, color="C0", linewidth=0.9)
    error_ax.set_ylabel("RMSE (original units)")
    error_ax.set_title("test error of each window (by its first forecast time)")
    gap_ax.set_ylabel(f"MSE minus {runs[0][0]}'s")
    gap_ax.set_xlabel("first forecast time")
    for ax in (error_ax, gap_ax):
        ax.grid(alpha=0.3)
    error_ax.legend(fontsize=8)
    fig.autofmt_xdate()
    return fig


def read_loss_history(run_dir: str | Path) -> dict[str, tuple[list[int], list[float]]]:
    """Per-epoch train and validation loss from Lightning's sparse ``logs/metrics.csv`` rows."""
    path = Path(run_dir) / "logs" / "metrics.csv"
    if not path.is_file():
        raise DataError(f"{path}: no training logs (classical models are not trained, so have no loss curves)")
    by_epoch: dict[str, dict[int, float]] = {"train/loss_epoch": {}, "val/loss": {}}
    with open(path, newline="") as handle:
        for record in csv.DictReader(handle):
            for column, values in by_epoch.items():
                if record.get(column) and record.get("epoch"):
                    try:
                        values[int(record["epoch"])] = float(record[column])
                    except ValueError:
                        raise DataError(f"{path}: non-numeric epoch or {column} in row {record}") from None
    if not any(by_epoch.values()):
        raise DataError(f"{path}: no train/loss_epoch or val/loss values (classical models have no loss curves)")
    return {column: (sorted(values), [values[epoch] for epoch in sorted(values)])
            for column, values in by_epoch.items() if values}


def _save_loss_curves(history: dict[str, tuple[list[int], list[float]]], title: str, out_png: str | Path) -> Path:
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    for column, label in (("train/loss_epoch", "train"), ("val/loss", "validation")):
        if column in history:
            epochs, losses = history[column]
            ax.plot(epochs, losses, marker="o", markersize=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (scaled units)")
    ax.set_title(f"{title}: loss per epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, out_png)


def plot_loss_curves(run_dir: str | Path, out_png: str | Path) -> Path:
    """Training and validation loss per epoch, to see convergence and over-fitting."""
    return _save_loss_curves(read_loss_history(run_dir), Path(run_dir).name, out_png)


def plot_run(run_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """All single-run figures; loss curves only when the run was trained. Returns the PNG paths."""
    out = plots_dir(run_dir, out_dir)
    written = [plot_forecast_grids(run_dir, out / "forecast_grids.png"),
               plot_error_map(run_dir, out / "error_map.png")]
    try:
        history = read_loss_history(run_dir)
    except DataError:  # classical models: nothing was trained
        return written
    written.append(_save_loss_curves(history, Path(run_dir).name, out / "loss_curves.png"))
    return written
