"""Running an experiment's planned runs: reuse what is finished, claim a run before fitting it (so
several processes or machines can share one ``OUT``), keep a failure with its reason, and fan out
to submitit when asked."""

from __future__ import annotations

import os
import socket
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stvfm.atomic import write_text_atomic
from stvfm.errors import ConfigError, StvfmError
from stvfm.experiments.fanout import run_on_executor
from stvfm.experiments.plan import PlannedRun, ReproduceConfig
from stvfm.ledger import read_records, record_finished
from stvfm.models.registry import get_model_entry
from stvfm.reports.tables import load_metrics
from stvfm.training.config import RunConfig
from stvfm.training.folders import in_progress
from stvfm.training.runner import fit

#: File that marks a run folder as being trained by a process (host:pid inside).
LOCK_NAME = ".running"
#: Status of a run whose result comes from a ledger record rather than its folder.
LEDGER_STATUS = "from ledger"
#: Why the last attempt at a run failed (its traceback for an unexpected error), read by --report-only.
ERROR_NAME = "error.txt"


@dataclass
class RunOutcome:
    label: str
    seed: int
    folder: Path
    status: str  # "trained" | "reused" | "from ledger" | "failed: <reason>" | "busy: <owner>" | "missing: <why>"
    metrics: dict[str, Any] | None


def finished_metrics(config: RunConfig) -> dict[str, Any] | None:
    """The metrics of a finished run with these settings; None if it has not finished, or finished a
    smaller budget (fitting it again extends it). A folder of another run (``RunConfig.identity``) stops the command."""
    folder = Path(config.out)
    if not (folder / "metrics.json").is_file() or in_progress(folder):
        return None
    metrics = load_metrics(folder)
    recorded = RunConfig.from_record(metrics.get("settings", {}), folder / "metrics.json")
    differing = config.identity_differences(recorded)
    if differing:
        raise ConfigError(f"{folder}: finished with other settings ({', '.join(differing)}); "
                          "choose another --out or remove the folder")
    return metrics if recorded.budget() == config.budget() else None


def run_all(config: ReproduceConfig, announce: Callable[[str], None] = lambda message: None) -> list[RunOutcome]:
    """Every planned run and seed: reused when finished (in its folder or the ledger), fitted (or
    resumed) otherwise, left to its owner when busy."""
    planned = [(run, seed, config.run_config(run, seed)) for run in config.planned_runs() for seed in config.seeds_for(run)]
    records = read_records([config.ledger]) if config.ledger else []
    # a finished folder first (it holds the predictions the report's maps draw), else a record of the same run
    finished = [finished_metrics(run_config) for _, _, run_config in planned]
    recorded = [None if metrics is not None else ledger_metrics(run_config, records)
                for (_, _, run_config), metrics in zip(planned, finished, strict=True)]
    if config.executor != "local" and not config.report_only:
        pending = [item for item, metrics, record in zip(planned, finished, recorded, strict=True) if metrics is None and not record]
        sent = iter(run_on_executor(config, pending, run_or_reuse, announce) if pending else [])
        results = [("reused", metrics) if metrics is not None else (LEDGER_STATUS, record) if record else next(sent)
                   for metrics, record in zip(finished, recorded, strict=True)]
    else:
        results = [(LEDGER_STATUS, record) if record else run_or_reuse(config, run, run_config, announce)
                   for (run, _, run_config), record in zip(planned, recorded, strict=True)]
    # a result from the ledger points at its record, which tables and plots read like a metrics.json
    return [RunOutcome(run.label, seed, Path(record["ledger_file"] if record else run_config.out), status, metrics)
            for (run, seed, run_config), record, (status, metrics) in zip(planned, recorded, results, strict=True)]


def ledger_metrics(config: RunConfig, records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest ledger record of this very run: the same identity and, for a trained model, the
    same budget (a record of another budget is another row of a table, never this one)."""
    trainable = get_model_entry(config.model).cls.trainable
    matching = []
    for record in records:
        recorded = RunConfig.from_record(record["settings"], record["ledger_file"])
        if not config.identity_differences(recorded) and (not trainable or recorded.budget() == config.budget()):
            matching.append(record)
    return max(matching, key=lambda record: record["recorded_at"], default=None)


def run_or_reuse(config: ReproduceConfig, run: PlannedRun, run_config: RunConfig,
                  announce: Callable[[str], None]) -> tuple[str, dict[str, Any] | None]:
    """(status, metrics) of one run and seed: reused, fitted under a claim, busy elsewhere, or failed."""
    metrics = finished_metrics(run_config)
    if metrics is not None:
        return "reused", metrics
    folder = Path(run_config.out)
    if config.report_only:
        if (folder / ERROR_NAME).is_file():
            return f"failed: {(folder / ERROR_NAME).read_text().strip().splitlines()[-1][:300]} (last attempt)", None
        return "missing: not run yet (--report-only)", None
    lock, owner = _claim(folder)
    if lock is None:
        announce(f"{config.experiment}: {run.label}, seed {run_config.seed} is being trained by {owner}; skipped for now")
        return f"busy: being trained by {owner} (remove {folder / LOCK_NAME} if no such process runs)", None
    try:
        metrics = finished_metrics(run_config)  # another process may have finished it just before the claim
        if metrics is not None:
            return "reused", metrics
        announce(f"{config.experiment}: {run.label}, seed {run_config.seed} -> {folder}")
        metrics = fit(run_config, finished=record_finished)
        (folder / ERROR_NAME).unlink(missing_ok=True)  # an earlier attempt's failure is history now
        return "trained", metrics
    except StvfmError as error:
        write_text_atomic(folder / ERROR_NAME, f"{error}\n")
        return f"failed: {error}", None
    except Exception as error:  # a bug in one model must not cost the other runs: kept with its traceback
        write_text_atomic(folder / ERROR_NAME, traceback.format_exc())
        reason = (str(error).strip().splitlines() or [""])[0][:200]
        return f"failed: {type(error).__name__}: {reason} (traceback in {folder / ERROR_NAME})", None
    finally:
        lock.unlink(missing_ok=True)


def _claim(folder: Path) -> tuple[Path | None, str]:
    """(lock file, this process) when the run is now ours; (None, owner) while a live process holds it.

    A claim is an ``O_EXCL`` create, atomic also on shared file systems. A lock left by a dead
    process on this host is taken over; one from another host is trusted. Taking over is done
    under an ``flock`` on a guard file, re-reading the owner there, so two processes that both
    saw the dead owner cannot both remove a lock (the second would remove the first's fresh one).
    """
    folder.mkdir(parents=True, exist_ok=True)
    lock, me = folder / LOCK_NAME, f"{socket.gethostname()}:{os.getpid()}"
    for _ in range(2):
        try:
            descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            owner = _owner(lock)
            if owner is None:  # released between our attempt and the read: try again
                continue
            if not owner:  # created an instant ago, its owner not yet written
                return None, "another process"
            if not _dead_here(owner):
                return None, owner
            _remove_if_still_owned_by(lock, owner)
            continue
        with os.fdopen(descriptor, "w") as handle:
            handle.write(me)
        return lock, me
    return None, "another process"


def _owner(lock: Path) -> str | None:
    try:
        return lock.read_text().strip()
    except FileNotFoundError:
        return None


def _remove_if_still_owned_by(lock: Path, owner: str) -> None:
    """Remove ``lock`` only while it still names ``owner``, one taker at a time (this host's processes)."""
    import fcntl

    with open(lock.with_name(LOCK_NAME + ".takeover"), "a") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        if _owner(lock) == owner:
            lock.unlink(missing_ok=True)


def _dead_here(owner: str) -> bool:
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
