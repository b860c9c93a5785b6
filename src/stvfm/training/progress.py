"""Where the runs under a folder stand: for a relay's long runs, trained over sessions, the question
between sittings is which are still training, which wait to be resumed, how far each got on
validation and what the rest will cost at the pace it trained so far.

Read only: nothing here opens a run's lock (a probe taken at the instant a relay starts its next
sitting would make that sitting refuse the folder); a live run is told by the process that claimed it.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from stvfm.errors import DataError
from stvfm.training.claim import EARLIER_SITTINGS_LOG, METRICS_LOG, claimant
from stvfm.training.folders import IN_PROGRESS_NAME, LAST_CHECKPOINT
from stvfm.training.sittings import read_sittings
from stvfm.training.stopping import EPOCH_SECONDS

#: Validation columns of Lightning's CSV log kept per epoch, with each epoch's wall time.
CURVE_COLUMNS = ("val/mse_st", "val/rmse", "val/mae", "val/loss", EPOCH_SECONDS)
#: What each kind of run selects its checkpoint on: a fit on the forecast's scaled MSE, a multi-dataset
#: pre-training (its settings name ``datasets``) on the mean of its datasets' validation losses.
FIT_SELECTION, PRETRAIN_SELECTION = "val/mse_st", "val/loss"


def validation_curve(*log_csvs: Path) -> list[dict[str, float]]:
    """Per-epoch validation figures from Lightning's CSV logs, later files overriding earlier ones for an
    epoch both hold (a sitting's own log after the rows its earlier sittings left); [] without any."""
    by_epoch: dict[int, dict[str, float]] = {}
    for log_csv in log_csvs:
        if not log_csv.is_file():
            continue
        with open(log_csv, newline="") as handle:
            for row in csv.DictReader(handle):
                epoch = row.get("epoch") or ""
                values = {key: float(row[key]) for key in CURVE_COLUMNS if row.get(key) not in (None, "")}
                if epoch.isdigit() and values:
                    by_epoch.setdefault(int(epoch), {}).update(values)
    return [{"epoch": epoch, **values} for epoch, values in sorted(by_epoch.items())]


@dataclass(frozen=True)
class RunProgress:
    """One run folder's standing. ``epochs_done`` counts finished epochs; ``best`` is the validation row
    of the selected epoch; ``seconds_per_epoch`` is the latest sitting's pace (None before its first epoch)."""

    folder: Path
    model: str
    dataset: str
    seed: int | None
    state: str
    epochs_done: int
    max_epochs: int | None
    patience: int | None
    selection: str
    best: dict[str, float] | None
    last: dict[str, float] | None
    sittings: int
    core_hours: float
    seconds_per_epoch: float | None
    threads: int | None

    @property
    def epochs_since_best(self) -> int | None:
        return None if self.best is None else self.epochs_done - 1 - int(self.best["epoch"])

    @property
    def hours_left_at_most(self) -> float | None:
        """Wall hours to the recipe's last epoch at the latest pace: an upper bound, since early stopping
        may end the run sooner; 0 for a run that has ended, None for a pace not yet measured."""
        if not self.state.startswith(("training", "interrupted", "time cap")):
            return 0.0
        if self.seconds_per_epoch is None or self.max_epochs is None:
            return None
        return max(0, self.max_epochs - self.epochs_done) * self.seconds_per_epoch / 3600


def _process_alive(pid: int) -> bool:
    """Whether ``pid`` is a live stvfm process on this machine (a recycled pid running something else is not)."""
    if Path("/proc/self").exists():
        try:
            return b"stvfm" in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
    try:  # no /proc: whether the pid lives at all
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _state(folder: Path, metrics: dict[str, Any] | None, resumable_epoch: int) -> str:
    if (folder / IN_PROGRESS_NAME).exists():
        pid = claimant(folder)
        if pid is not None and _process_alive(pid):
            return f"training (pid {pid})"
    if (folder / IN_PROGRESS_NAME).exists() or (metrics is None and resumable_epoch >= 0):
        return f"interrupted; resumes after epoch {resumable_epoch}"
    if metrics is None:
        return "not started"
    reason = metrics.get("stop_reason") or "closed form"
    return "time cap; resumable" if reason == "time cap" else reason


def _checkpointed_epoch(folder: Path) -> int | None:
    """The epoch ``last.ckpt`` holds, the one a resumed run continues after (a kill between an epoch's
    logs and its checkpoint leaves logs of an epoch the next sitting redoes); None without one. Memory-mapped:
    the weights are not read."""
    try:
        return int(torch.load(folder / LAST_CHECKPOINT, map_location="cpu", weights_only=True, mmap=True)["epoch"])
    except Exception:  # absent, being replaced, or not a checkpoint: the logs are all there is to go by
        return None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        payload = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: not readable as JSON ({error})") from None
    return payload if isinstance(payload, dict) else None


def _pace(sittings: list[dict[str, Any]]) -> tuple[float | None, int | None]:
    """(seconds per epoch, threads) of the latest sitting that finished an epoch."""
    reached = [int(s.get("epochs_reached") or 0) for s in sittings]
    for index in range(len(sittings) - 1, -1, -1):
        start = max(reached[:index], default=0)
        if reached[index] > start:
            return float(sittings[index].get("train_seconds") or 0) / (reached[index] - start), sittings[index].get("threads")
    return None, None


def run_progress(folder: Path) -> RunProgress:
    """The standing of the run in ``folder`` (one with a config.yaml), from its records alone."""
    config_path = folder / "config.yaml"
    try:
        settings = yaml.safe_load(config_path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise DataError(f"{config_path}: not readable as a run's settings ({error})") from None
    if not isinstance(settings, dict) or "model" not in settings:
        raise DataError(f"{config_path}: not a run's settings (no model)")
    pretraining = isinstance(settings.get("datasets"), list)
    metrics = _read_json(folder / "metrics.json")
    sittings = read_sittings(folder)
    curve = validation_curve(folder / "logs" / EARLIER_SITTINGS_LOG, folder / "logs" / METRICS_LOG)
    checkpointed = _checkpointed_epoch(folder) if (folder / IN_PROGRESS_NAME).exists() or metrics is None else None
    if checkpointed is not None:  # unfinished: what a resume keeps
        epochs_done = checkpointed + 1
        curve = [row for row in curve if row["epoch"] <= checkpointed]
    else:
        epochs_done = max([int(s.get("epochs_reached") or 0) for s in sittings]
                          + [int((metrics or {}).get("epochs") or 0)] + [int(row["epoch"]) + 1 for row in curve])
    selection = PRETRAIN_SELECTION if pretraining else FIT_SELECTION
    scored = [row for row in curve if math.isfinite(row.get(selection, math.nan))]
    seconds_per_epoch, threads = _pace(sittings)
    return RunProgress(
        folder=folder, model=str(settings["model"]),
        dataset="+".join(map(str, settings["datasets"])) if pretraining else str(settings.get("dataset")),
        seed=settings.get("seed"), state=_state(folder, metrics, epochs_done - 1),
        epochs_done=epochs_done, max_epochs=settings.get("max_epochs"), patience=settings.get("patience"),
        selection=selection, best=min(scored, key=lambda row: row[selection]) if scored else None,
        last=scored[-1] if scored else None, sittings=len(sittings),
        core_hours=sum(float(s.get("train_seconds") or 0) * int(s.get("threads") or 1) for s in sittings) / 3600,
        seconds_per_epoch=seconds_per_epoch, threads=threads,
    )


def progress(root: str | os.PathLike) -> list[RunProgress]:
    """Every run folder below ``root`` (``root`` itself included), in path order."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder of runs")
    folders = sorted({path.parent for path in root.rglob("config.yaml")
                      if not {"checkpoints", "logs"} & set(path.parent.relative_to(root).parts)})
    return [run_progress(folder) for folder in folders]
