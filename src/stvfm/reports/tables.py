"""Reading run results back for side-by-side tables."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from stvfm.errors import DataError
from stvfm.training.folders import in_progress
from stvfm.training.scoring import with_window_errors
from stvfm.training.significance import paired_window_test, per_window_problem


def load_metrics(run: str | Path) -> dict[str, Any]:
    """``metrics.json`` of a run folder (or the file itself), checked for the fields tables need."""
    path = Path(run)
    if path.is_dir():
        path = path / "metrics.json"
    if not path.is_file():
        raise DataError(f"{path}: no metrics.json (did the run finish?)")
    if in_progress(path.parent):
        raise DataError(f"{path.parent}: a run is in progress there; its metrics.json is of an earlier run")
    try:
        payload = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a metrics.json (binary content)") from None
    if not isinstance(payload, dict):
        raise DataError(f"{path}: not a metrics.json (a JSON {type(payload).__name__}, not an object)")
    missing = [key for key in ("model", "dataset", "channel", "mae", "rmse", "n_windows") if key not in payload]
    if missing:
        raise DataError(f"{path}: missing field(s) {', '.join(missing)}")
    if "per_window" in payload and (problem := per_window_problem(payload["per_window"])):
        raise DataError(f"{path}: {problem}")
    return payload


COLUMNS = ("model", "dataset", "channel", "RMSE", "MAE", "windows", "weights", "budget", "best row against it, paired")


def _epochs(count: int) -> str:
    return f"{count} epoch{'' if count == 1 else 's'}"


def budget_words(payload: dict[str, Any]) -> str:
    """How much training a result had, in words a newcomer reads right: a closed form, a fraction of one
    epoch, or whole epochs (with their time only then); why it stopped, and ``not converged`` where it
    certainly was not (a time cap, or less than one epoch)."""
    steps, per_epoch = payload.get("train_steps"), payload.get("batches_per_epoch")
    if not steps and (payload.get("stop_reason") == "not trained" or not payload.get("epochs")):
        return payload.get("fitted_by") or "closed form"  # records before ``fitted_by``: the moving averages
    limit = (payload.get("settings") or {}).get("limit_train_batches", 1.0)
    partial_epoch = bool(steps and per_epoch and steps < per_epoch)
    if partial_epoch:
        words = f"{steps} training steps, about {steps / per_epoch:.0%} of one epoch"
    elif not (limit == 1.0 and isinstance(limit, float) or isinstance(limit, int) and limit >= (per_epoch or math.inf)):
        share = f"{limit} batch{'es' if limit != 1 else ''}" if isinstance(limit, int) else f"{limit:.0%} of the batches"
        words = f"{_epochs(payload['epochs'])} of {share} each"
    else:
        per_epoch_seconds = payload.get("seconds_per_epoch")
        each = "" if payload["epochs"] == 1 else " each"
        words = _epochs(payload["epochs"]) + (f", {per_epoch_seconds:.0f} s{each}" if per_epoch_seconds else "")
    reason = payload.get("stop_reason")
    words += f" ({reason})" if reason else ""
    return words + (": not converged" if partial_epoch or reason == "time cap" else "")


def _results(source: str | Path) -> list[dict[str, Any]]:
    """The results one argument names: a run folder or its metrics.json, or a ledger folder (its
    records, searched recursively) or one ledger record: finished runs and records mix in one table."""
    from stvfm.ledger import read_records

    path = Path(source)
    if path.is_dir() and not (path / "metrics.json").exists() and any(path.rglob("*.json")):
        return read_records([path])
    if path.is_file() and path.name != "metrics.json":
        try:
            return read_records([path])
        except DataError:
            pass  # not a ledger record: load_metrics says what is wrong with it as a metrics file
    return [with_window_errors(path if path.is_dir() else path.parent, load_metrics(path))]


def _against_best(best: dict[str, Any], payload: dict[str, Any]) -> str:
    """The lowest-RMSE result against this one, window by window (``significance.paired_window_test``):
    whether the gap between them is beyond the test windows' own noise."""
    if payload is best:
        return "best"
    if not (isinstance(best.get("per_window"), dict) and isinstance(payload.get("per_window"), dict)):
        return "per-window errors not recorded"
    try:
        return paired_window_test(best["per_window"], payload["per_window"]).summary()
    except DataError as error:  # other windows, or too few scored by both
        return str(error)


def comparison_rows(runs: list[str | Path]) -> list[tuple[str, ...]]:
    """One row per run or ledger record, best RMSE first, naming the weights each model really used, and
    the best row's paired test against each (per-window MSE gap, verdict, p)."""
    rows = []
    results = sorted((result for source in runs for result in _results(source)), key=lambda p: p["rmse"])
    for payload in results:
        weights = (payload.get("weights") or {}).get("label", "-")
        name = payload["model"] + (f" ({payload['variant']})" if payload.get("variant") else "")
        rows.append((name, payload["dataset"], str(payload["channel"]), f"{payload['rmse']:.3f}",
                     f"{payload['mae']:.3f}", str(payload["n_windows"]), weights, budget_words(payload),
                     _against_best(results[0], payload)))
    return rows


def markdown_table(rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
