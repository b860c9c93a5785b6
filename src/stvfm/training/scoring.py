"""The protocol card every result carries, and re-scoring a finished run's forecasts under another rule.

Two figures compare only under one protocol: the split the scaler was fitted on, the clamping of
forecasts, which targets count (the masking rule), how steps are pooled and how many targets were
scored. ``metrics.json`` and ledger records carry that card (``protocol_card``); ``score`` reads a
run's ``predictions.npz`` (original units, clamped, NaN where a target was missing) and scores it
again, under a threshold or on chosen steps, without retraining. Folders written before cards
existed get the card of the defaults those versions used (``recorded_card``).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stvfm.data.scaling import SCALED_RANGE
from stvfm.errors import ConfigError, DataError
from stvfm.training.metrics import ForecastMetrics

CARD_VERSION = 1
#: none: every target scored (versions before cards, which refused gaps); missing: targets that were
#: missing are not scored; below: neither are targets whose true value is below ``mask_below``.
MASKING_RULES = ("none", "missing", "below")
CLAMP = f"scaled [{SCALED_RANGE[0]:g}, {SCALED_RANGE[1]:g}], then de-scaled"  # forecasts, before any error is taken
POOLING = "pooled"  # over steps x channels x cells x windows, RMSE = sqrt of the pooled MSE; per step beside
#: What versions before the card did: scaler on the training split unless settings say otherwise, every
#: target scored, series with gaps refused.
EARLIER_VERSIONS = "not recorded: its version's defaults"
NO_GAP_RULE = "none (gaps refused)"


def protocol_card(scaler_fit_on: str, gap_fill: str, results: dict[str, Any], masking: str = "missing",
                  mask_below: float | None = None, steps: list[int] | None = None,
                  windows_with_history_gaps: int | None = 0) -> dict[str, Any]:
    """How ``results`` (a ``ForecastMetrics.compute()``) were computed, with their target counts."""
    if masking not in MASKING_RULES:
        raise ConfigError(f"unknown masking rule {masking!r}; use one of {', '.join(MASKING_RULES)}")
    return {
        "version": CARD_VERSION,
        "scaler_fit_on": scaler_fit_on,
        "clamp": CLAMP,
        "masking": masking,
        "mask_below": mask_below,
        "gap_fill": gap_fill,
        "windows_with_history_gaps": windows_with_history_gaps,
        "steps": steps or list(range(1, len(results["per_horizon"]["mae"]) + 1)),
        "pooling": POOLING,
        "n_targets": results["n_targets"],
        "n_scored": results["n_points"],
        "n_scored_per_step": results["per_horizon"]["n_points"],
    }


def recorded_card(metrics: dict[str, Any]) -> dict[str, Any]:
    """A result's card: the one it carries, or for a result written before cards existed the card of
    the defaults its version used (counts from its ``n_points``, every target scored)."""
    card = metrics.get("protocol_card")
    if isinstance(card, dict):
        return card
    settings = metrics.get("settings") if isinstance(metrics.get("settings"), dict) else {}
    scaling = metrics.get("scaling") if isinstance(metrics.get("scaling"), dict) else {}
    horizon = len(metrics["per_horizon"]["mae"])
    points = int(metrics.get("n_points") or 0)
    return {
        "version": 0,
        "source": EARLIER_VERSIONS,
        "scaler_fit_on": settings.get("scaling") or scaling.get("fit_on") or "train",
        "clamp": CLAMP,
        "masking": "none",
        "mask_below": None,
        "gap_fill": NO_GAP_RULE,
        "windows_with_history_gaps": 0,
        "steps": list(range(1, horizon + 1)),
        "pooling": POOLING,
        "n_targets": points,
        "n_scored": points,
        "n_scored_per_step": [points // horizon] * horizon,
    }


def window_errors(prediction: np.ndarray, target: np.ndarray, start: np.ndarray, first_step_time: np.ndarray,
                  interval_minutes: int) -> dict[str, Any]:
    """Each test window's MSE and MAE over its scored targets (every step, channel and cell), in window
    order, so two runs scored on the same windows can be compared window by window (a paired test,
    ``stvfm.training.significance``) and not only by their pooled figures. Arrays as ``predictions.npz``
    holds them: original units, clamped, NaN where a target was missing. The counts weigh each window
    back into the pooled figures: sum(mse * n_points) / sum(n_points) is the pooled MSE."""
    order = np.argsort(start, kind="stable")
    error = (prediction.astype(np.float64) - target.astype(np.float64))[order].reshape(len(order), -1)
    observed = ~np.isnan(error)
    points = observed.sum(axis=1)
    error = np.where(observed, error, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):  # a window with no target scored has no figure
        mse, mae = np.square(error).sum(axis=1) / points, np.abs(error).sum(axis=1) / points
    return {
        "first_step_time": str(first_step_time[order][0]),
        "interval_minutes": int(interval_minutes),
        "mse": [float(value) if count else None for value, count in zip(mse, points, strict=True)],
        "mae": [float(value) if count else None for value, count in zip(mae, points, strict=True)],
        "n_points": points.tolist(),
    }


def _read_metrics(folder: Path) -> dict[str, Any]:
    path = folder / "metrics.json"
    if not path.is_file():
        raise DataError(f"{path}: no metrics.json (did the run finish?)")
    try:
        metrics = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: not a readable metrics.json ({error})") from None
    missing = [key for key in ("model", "dataset", "mae", "rmse", "per_horizon") if key not in (metrics or {})]
    if not isinstance(metrics, dict) or missing:
        raise DataError(f"{path}: not a run's metrics.json (missing {', '.join(missing) or 'an object'})")
    return metrics


def _read_predictions(folder: Path, *extra: str) -> tuple[np.ndarray, ...]:
    """The prediction and target arrays of a run's predictions.npz, then the ``extra`` ones named."""
    path = folder / "predictions.npz"
    if not path.is_file():
        raise DataError(f"{path}: no predictions.npz to score (the run wrote none)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            prediction, target, *others = (archive[name] for name in ("prediction", "target", *extra))
    except KeyError as error:
        raise DataError(f"{path}: missing array {error}") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"{path}: not a readable .npz file ({error})") from None
    if prediction.ndim < 3 or prediction.shape != target.shape or prediction.shape[0] == 0:
        raise DataError(f"{path}: prediction {prediction.shape} and target {target.shape} must be the same "
                        "non-empty (windows, steps, ...) arrays")
    return prediction, target, *others


def with_window_errors(run: str | Path, metrics: dict[str, Any]) -> dict[str, Any]:
    """``metrics`` with ``per_window``: as recorded, or, for a run whose metrics.json predates them, the
    ``window_errors`` of its saved forecasts (where it has them)."""
    folder = Path(run)
    if "per_window" in metrics or not (folder / "predictions.npz").is_file():
        return metrics
    prediction, target, start, first_step = _read_predictions(folder, "start", "first_step_time")
    times = np.sort(first_step.astype("datetime64[m]"))
    steps = np.diff(times).astype(int)
    interval = int(steps[steps > 0].min()) if (steps > 0).any() else 0  # stride-1 windows: one step apart
    return metrics | {"per_window": window_errors(prediction, target, start, first_step, interval)}


def _chosen_steps(steps: list[int] | None, horizon: int) -> list[int]:
    if not steps:
        return list(range(1, horizon + 1))
    outside = [step for step in steps if not 1 <= step <= horizon]
    if outside:
        raise ConfigError(f"steps {outside} are outside the run's forecast steps 1..{horizon}")
    return sorted(set(steps))


def score(run: str | Path, mask_below: float | None = None, steps: list[int] | None = None) -> dict[str, Any]:
    """A finished run's saved test forecasts scored again: missing targets never count, and with
    ``mask_below`` neither do targets whose true value is below it; pooled over ``steps`` (1-based,
    default all). The figures, this score's card, and the run's recorded figures and card."""
    folder = Path(run)
    metrics = _read_metrics(folder)
    prediction, target = _read_predictions(folder)
    chosen = _chosen_steps(steps, prediction.shape[1])
    if mask_below is not None and not np.isfinite(mask_below):
        raise ConfigError(f"mask threshold must be a finite number, got {mask_below}")
    index = [step - 1 for step in chosen]
    prediction, target = prediction[:, index].astype(np.float64), target[:, index].astype(np.float64)
    observed = ~np.isnan(target)
    if mask_below is not None:
        observed &= target >= mask_below
    metric = ForecastMetrics(None, len(chosen))  # saved forecasts are in original units, clamped already
    metric.update(torch.from_numpy(prediction), torch.from_numpy(target), torch.from_numpy(observed))
    results = metric.compute()
    recorded = recorded_card(metrics)
    card = protocol_card(recorded["scaler_fit_on"], recorded["gap_fill"], results,
                         masking="missing" if mask_below is None else "below", mask_below=mask_below,
                         steps=chosen, windows_with_history_gaps=recorded.get("windows_with_history_gaps"))
    return {
        "run": str(folder),
        "model": metrics["model"] + (f" ({metrics['variant']})" if metrics.get("variant") else ""),
        "dataset": metrics["dataset"],
        "channel": metrics.get("channel"),
        **results,
        "protocol_card": card,
        "recorded": {"mae": metrics["mae"], "rmse": metrics["rmse"], "protocol_card": recorded},
    }
