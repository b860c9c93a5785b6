"""Claiming a run folder for a run: refusing one left by another run, resuming one's own, and keeping a
resumed run's epoch logs (which Lightning's CSVLogger would delete)."""

from __future__ import annotations

import csv
import fcntl
import json
import os
import time
from pathlib import Path
from typing import IO

import yaml

from stvfm.atomic import atomic_path, write_text_atomic
from stvfm.errors import CheckpointError, ConfigError
from stvfm.training.checkpoints import load_checkpoint
from stvfm.training.config import RunConfig
from stvfm.training.folders import IN_PROGRESS_NAME, LAST_CHECKPOINT, LOCK_NAME, clear_run, own_temporaries

#: Run folders this process holds the lock of, until ``release_folder``.
_held: dict[Path, IO] = {}


def _recorded_runs(out: Path, checkpoints: bool = True) -> list[tuple[Path, RunConfig]]:
    """The runs the folder's records describe: its config.yaml, metrics.json and (``checkpoints``) its
    last and best checkpoints."""
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
    last = out / LAST_CHECKPOINT
    if checkpoints and last.exists():
        try:
            saved = load_checkpoint(last)
        except CheckpointError as error:
            raise CheckpointError(f"{error}; delete it to start afresh, or pass --overwrite to clear the folder") from None
        records.append((last, RunConfig.from_record(saved["stvfm"]["run"], last)))
    for best in sorted((out / "checkpoints").glob("best*.ckpt")) if checkpoints else []:
        try:  # a readable best checkpoint is its run's record; an unreadable one is a stale leftover
            records.append((best, RunConfig.from_record(load_checkpoint(best)["stvfm"]["run"], best)))
        except CheckpointError:
            continue
    return records


def lock_folder(out: Path) -> None:
    """Hold the run folder's lock (released by ``release_folder`` or when the process ends), or refuse:
    two processes writing one run would interleave its checkpoints and logs."""
    key = out.resolve()
    if key in _held:
        return
    out.mkdir(parents=True, exist_ok=True)
    handle = open(out / LOCK_NAME, "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise ConfigError(f"{out}: another stvfm process is running a run in this folder; "
                          "wait for it to finish or use another --out") from None
    _held[key] = handle


def mark_in_progress(out: Path) -> None:
    """Mark ``out`` as holding a run this process trains, until its outputs are written; the pid tells
    ``stvfm progress`` a live run from one a kill interrupted."""
    write_text_atomic(out / IN_PROGRESS_NAME, f"started {time.strftime('%Y-%m-%dT%H:%M:%S')} by pid {os.getpid()}\n")


def claimant(out: Path) -> int | None:
    """The pid ``mark_in_progress`` wrote into ``out``; None where the folder holds no claim it can read."""
    try:
        words = (out / IN_PROGRESS_NAME).read_text(errors="replace").split()
    except OSError:
        return None
    return int(words[-1]) if words and words[-1].isdigit() else None


def release_folder(out: Path) -> None:
    """Let other processes claim ``out`` again (closing the file releases the lock)."""
    handle = _held.pop(Path(out).resolve(), None)
    if handle is not None:
        handle.close()


def _refuse_other_runs(config: RunConfig, records: list[tuple[Path, RunConfig]]) -> None:
    for path, recorded in records:
        differing = config.identity_differences(recorded)
        if differing:
            raise ConfigError(f"{path}: left by another run (differs in {', '.join(differing)}); "
                              "use another --out, or --overwrite to clear the folder first")


def accept_folder(config: RunConfig, out: Path, overwrite: bool) -> int | None:
    """Claim ``out`` for this run; the epoch ``last.ckpt`` holds when the run resumes from it, else None.

    A folder whose records describe another run is refused before anything in it changes.
    """
    from lightning.pytorch.utilities import rank_zero_only

    if not overwrite:  # read only: a folder refused is left exactly as it was
        _refuse_other_runs(config, _recorded_runs(out))
    if rank_zero_only.rank == 0:  # under DDP the launching process holds the folder for all ranks
        lock_folder(out)
    if overwrite:
        clear_run(out)
    _refuse_other_runs(config, _recorded_runs(out, checkpoints=False))  # a run that claimed it meanwhile
    last = out / LAST_CHECKPOINT
    resumed = int(load_checkpoint(last).get("epoch", -1)) if last.exists() else None
    if rank_zero_only.rank != 0:  # under DDP the launching process writes the folder
        return resumed
    for stray in own_temporaries(out):  # of this run's writes killed before their rename
        stray.unlink(missing_ok=True)
    mark_in_progress(out)
    write_text_atomic(out / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
    return resumed


def refuse_trained_run(out: Path, source: str | os.PathLike, kind: str) -> None:
    """A test writes its own metrics.json: never into the folder of a trained run (whose metrics.json holds
    its epochs, stop reason and timings) nor into or around the checkpoint or export (``kind``) it reads."""
    if Path(out).resolve() in (Path(source).resolve(), *Path(source).resolve().parents):
        raise ConfigError(f"{out}: holds the {kind} under test; write the test's results to another --out")
    if (out / "checkpoints").is_dir() or _trained_metrics(out / "metrics.json"):
        raise ConfigError(f"{out}: holds a trained run's records; write the test's results to another --out")


def _trained_metrics(path: Path) -> bool:
    """Whether ``path`` is the metrics.json of a run that trained (it records epochs)."""
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(payload, dict) and "epochs" in payload


#: Where the logged epochs a resumed run does not redo wait while a sitting trains. Lightning's CSVLogger
#: deletes logs/metrics.csv when it starts; held in memory, they would die with a sitting killed before its
#: end (a relay's sitting at a session's end), and the next sitting would find only the killed one's rows.
#: One row can still be lost: Lightning writes an epoch's checkpoint before it logs that epoch's training
#: averages, so a kill in that instant resumes after the epoch and its ``train/*_epoch`` row is never logged.
EARLIER_SITTINGS_LOG = "metrics-earlier-sittings.csv"
METRICS_LOG = "metrics.csv"


def _read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    fields = sorted({key for row in rows for key in row if key is not None})
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _epoch(row: dict[str, str]) -> int | None:
    value = row.get("epoch") or ""
    return int(float(value)) if value.replace(".", "", 1).isdigit() else None


def _tensorboard_rows(logs: Path, epochs: set[int]) -> list[dict[str, str]]:
    """Rows of ``epochs`` rebuilt from the TensorBoard event files beside the CSV log, one per logged step:
    what a run resumed by code older than the side file lost from metrics.csv is still in them."""
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        return []
    by_step: dict[int, dict[str, str]] = {}
    for events in sorted(logs.glob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags().get("scalars", []):
            for event in accumulator.Scalars(tag):
                by_step.setdefault(event.step, {"step": str(event.step)})[tag] = repr(event.value)
    rows = [row | {"epoch": str(int(float(row["epoch"])))} for _, row in sorted(by_step.items()) if "epoch" in row]
    return [row for row in rows if int(row["epoch"]) in epochs]


def keep_earlier_rows(logs: Path, resumed_epoch: int | None) -> None:
    """Before a sitting: the rows of the epochs up to ``resumed_epoch`` (the last one ``last.ckpt`` holds;
    None: a fresh run, which keeps none), saved to the side file. Each epoch's rows come from metrics.csv
    where it has them, else from the side file, else from the TensorBoard events."""
    side = logs / EARLIER_SITTINGS_LOG
    if resumed_epoch is None:
        side.unlink(missing_ok=True)
        return
    wanted = set(range(resumed_epoch + 1))
    rows: list[dict[str, str]] = []
    for source in (lambda: _read_rows(logs / METRICS_LOG), lambda: _read_rows(side)):
        found = [row for row in source() if _epoch(row) in wanted]
        rows += found
        wanted -= {_epoch(row) for row in found}
    if wanted:
        rows += _tensorboard_rows(logs, wanted)
    if rows:
        _write_rows(side, sorted(rows, key=lambda row: (_epoch(row), int(float(row.get("step") or 0)))))


def restore_earlier_rows(logs: Path) -> None:
    """After a sitting: the side file's rows put back before metrics.csv's own, then the side file removed."""
    side = logs / EARLIER_SITTINGS_LOG
    current = _read_rows(logs / METRICS_LOG)
    logged = {_epoch(row) for row in current}
    earlier = [row for row in _read_rows(side) if _epoch(row) not in logged]
    if earlier:
        _write_rows(logs / METRICS_LOG, earlier + current)
    side.unlink(missing_ok=True)
