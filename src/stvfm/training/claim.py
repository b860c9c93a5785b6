"""Claiming a run folder for a run: refusing one left by another run, resuming one's own, and keeping a
resumed run's epoch logs (which Lightning's CSVLogger would delete)."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import yaml

from stvfm.atomic import atomic_path, write_text_atomic
from stvfm.errors import CheckpointError, ConfigError
from stvfm.training.checkpoints import load_checkpoint
from stvfm.training.config import RunConfig
from stvfm.training.folders import IN_PROGRESS_NAME, clear_run


def _recorded_runs(out: Path) -> list[tuple[Path, RunConfig]]:
    """The runs the folder's records describe: its config.yaml, metrics.json and last.ckpt."""
    records = []
    for path in (out / "config.yaml", out / "metrics.json"):
        if path.is_file():
            try:
                text = path.read_text()
                payload = yaml.safe_load(text) if path.suffix == ".yaml" else json.loads(text).get("settings")
            except (ValueError, yaml.YAMLError, AttributeError):
                payload = None
            if not isinstance(payload, dict):
                raise ConfigError(f"{path}: not a run record; use another --out, or --overwrite to clear the folder")
            records.append((path, RunConfig.from_record(payload, path)))
    last = out / "checkpoints" / "last.ckpt"
    if last.exists():
        try:
            saved = load_checkpoint(last)
        except CheckpointError as error:
            raise CheckpointError(f"{error}; delete it to start afresh, or pass --overwrite to clear the folder") from None
        records.append((last, RunConfig.from_record(saved["stvfm"]["run"], last)))
    return records


def accept_folder(config: RunConfig, out: Path, overwrite: bool) -> int | None:
    """Claim ``out`` for this run; the epoch ``last.ckpt`` holds when the run resumes from it, else None.

    A folder whose records describe another run is refused before anything in it changes.
    """
    from lightning.pytorch.utilities import rank_zero_only

    if overwrite:
        clear_run(out)
    records = _recorded_runs(out)
    for path, recorded in records:
        differing = config.identity_differences(recorded)
        if differing:
            raise ConfigError(f"{path}: left by another run (differs in {', '.join(differing)}); "
                              "use another --out, or --overwrite to clear the folder first")
    last = out / "checkpoints" / "last.ckpt"
    resumed = int(load_checkpoint(last).get("epoch", -1)) if last.exists() else None
    if rank_zero_only.rank != 0:  # under DDP the launching process writes the folder
        return resumed
    for stray in out.rglob(".*.tmp"):  # temporaries of writes killed before their rename
        stray.unlink(missing_ok=True)
    write_text_atomic(out / IN_PROGRESS_NAME, f"started {time.strftime('%Y-%m-%dT%H:%M:%S')} by pid {os.getpid()}\n")
    write_text_atomic(out / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
    return resumed


def logged_rows(path: Path, before_epoch: int) -> list[dict[str, str]]:
    """The rows of a CSV log from epochs before ``before_epoch``."""
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return [row for row in csv.DictReader(handle) if (row.get("epoch") or "x").isdigit()
                and int(row["epoch"]) < before_epoch]


def prepend_rows(path: Path, rows: list[dict[str, str]]) -> None:
    """Put ``rows`` back before a CSV log's own (Lightning's CSVLogger deletes the file when it starts)."""
    if not rows:
        return
    current: list[dict[str, str]] = []
    if path.is_file():
        with open(path, newline="") as handle:
            current = list(csv.DictReader(handle))
    fields = sorted({key for row in rows + current for key in row if key is not None})
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows + current)
