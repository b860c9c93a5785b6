"""The results ledger: one small JSON record per finished run, meant to be committed to git.

A record holds everything ``metrics.json`` holds (so every table reads it like a run folder)
plus what makes a result trustworthy without the run folder: the resolved settings, epochs
run, wall time and threads, why training stopped, the validation curve, and each test window's
error (so two records can be tested window by window). No weights, no predictions. Records from
different machines and days add up under ``<ledger>/<dataset>/<record name>.json``.

It sits above training and knows it: a record is read from a finished run folder and named by the
run's identity (``RunConfig``), while training never hears of the ledger: whoever calls ``fit`` passes
``record_finished`` as its ``finished`` hook (``stvfm fit``, ``evaluate``, ``reproduce``, ``search``).

Imports from stvfm: ``stvfm.training``, ``stvfm.models.registry`` (which options a model gained later),
``stvfm.data``, ``stvfm.host``, ``stvfm.atomic``, ``stvfm.errors``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from stvfm import host
from stvfm.atomic import write_json_atomic
from stvfm.data.registry import get_dataset, is_registered
from stvfm.data.series import ALL_CHANNELS
from stvfm.errors import DataError, StvfmError
from stvfm.models.registry import options_added_later
from stvfm.training.config import PLACEMENT, RunConfig
from stvfm.training.progress import validation_curve
from stvfm.training.scoring import with_window_errors
from stvfm.training.significance import per_window_problem
from stvfm.training.stopping import STOP_REASONS, stop_reason

LEDGER_ENV = "STVFM_LEDGER"
SCHEMA = 1
#: What a name that becomes part of a record's path may hold: no separator, no "..", no leading dot.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+=.-]{0,127}")
REQUIRED = ("schema", "model", "dataset", "channel", "split", "mae", "rmse", "per_horizon", "n_windows", "seed",
            "settings", "stop_reason", "epochs", "val_curve", "threads", "recorded_at")


def ledger_root(explicit: str | Path | None = None) -> Path | None:
    """The ledger folder: ``explicit``, else ``$STVFM_LEDGER``; None when neither is set (no record)."""
    chosen = explicit or os.environ.get(LEDGER_ENV)
    return Path(chosen) if chosen else None


def record_period(record: dict[str, Any]) -> tuple[str, str] | None:
    """First and last time step of the series a record's run read: its ``period``, or for a record
    written before runs stored it, the registered protocol's span at its ``steps``; None when neither
    is known (a file no registry entry describes)."""
    period = record.get("period") or {}
    if period.get("start") and period.get("end"):
        return period["start"], period["end"]
    return protocol_period(str(record.get("dataset")), (record.get("settings") or {}).get("steps"))


def protocol_period(dataset: str, steps: int | None = None) -> tuple[str, str] | None:
    """The span a registered dataset's protocol reads at ``steps``; None for a file of one's own."""
    return get_dataset(dataset).protocol_period(steps) if is_registered(dataset) else None


def period_text(period: tuple[str, str] | None) -> str:
    return f"{period[0].replace('T', ' ')} to {period[1].replace('T', ' ')}" if period else "period not recorded"


def normalised_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """A record's settings with the defaults of today's code filled in, so records written before a
    setting existed compare equal to newer ones; settings the code cannot read are kept as written."""
    try:
        return RunConfig.from_record(settings, "a ledger record's settings").to_dict()
    except StvfmError:
        return dict(settings)


def identity(settings: dict[str, Any]) -> str:
    """A short hash of the run and its budget, so two records of one result share a name: where and how
    fast it ran (placement) is left out, the budget stays in (the same run stopped at 8 minutes and
    given 30 are two results, and both are kept). The data digest is left out too: records written
    before it was recorded name the same results. A setting added after records were first named is
    left out too while it holds the default every earlier record had, so their names stay."""
    kept = result_settings(settings)
    if kept.get("channel") == ALL_CHANNELS:
        kept["channel"] = None  # how every channel was written when records were first named
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:8]


def result_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings that decide a run's result: placement, the data digest and later-added settings at
    the default earlier records had are left out (see ``identity``)."""
    placement = (*RunConfig.field_names(PLACEMENT), "data_sha256")
    later = RunConfig.defaults_added_later()
    kept = {key: value for key, value in normalised_settings(settings).items()
            if key not in placement and not (key in later and value == later[key])}
    options = kept.get("model_options")
    if isinstance(options, dict) and isinstance(kept.get("model"), str):
        later_options = options_added_later(kept["model"])
        kept["model_options"] = {key: value for key, value in options.items()
                                 if not (key in later_options and value == later_options[key])}
    return kept


def record_name(record: dict[str, Any]) -> str:
    variant = record.get("variant")
    name = record["model"] + (f"-{variant}" if variant else "")
    return f"{name}-ch{record['channel']}-seed{record['seed']}-{identity(record['settings'])}"


def build_record(run: str | Path) -> dict[str, Any]:
    """A ledger record from a finished run folder (its metrics.json, config.yaml and CSV log)."""
    folder = Path(run)
    metrics_path = folder / "metrics.json"
    if not metrics_path.is_file():
        raise DataError(f"{folder}: no metrics.json (did the run finish?)")
    try:
        metrics = json.loads(metrics_path.read_text())
    except json.JSONDecodeError as error:
        raise DataError(f"{metrics_path}: not valid JSON ({error.msg})") from None
    settings = metrics.get("settings")
    if not isinstance(settings, dict) and (folder / "config.yaml").is_file():
        settings = yaml.safe_load((folder / "config.yaml").read_text())
    if not isinstance(settings, dict):
        raise DataError(f"{folder}: no run settings in metrics.json or config.yaml")
    epochs = int(metrics.get("epochs") or 0)
    reason = metrics.get("stop_reason") or stop_reason(
        epochs, int(settings.get("max_epochs") or 0), float(metrics.get("train_seconds") or 0.0),
        settings.get("max_minutes"), early_stopped=False)
    record = {key: value for key, value in metrics.items() if key not in ("checkpoint",)}
    record = with_window_errors(folder, record)  # a run from before they were kept: from its forecasts
    record.update(
        schema=SCHEMA, settings=settings, stop_reason=reason, epochs=epochs,
        val_curve=validation_curve(folder / "logs" / "metrics.csv"),
        threads=metrics.get("threads"),
        machine=metrics.get("machine") or host.describe(),
        recorded_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    return record


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _record_problem(record: dict[str, Any]) -> str | None:
    """The first field of a record whose value no table or record name can use; None when all fit."""
    for key in ("model", "dataset"):
        if not isinstance(record[key], str) or not SAFE_NAME.fullmatch(record[key]) or ".." in record[key]:
            return f"{key} {record[key]!r} is not a plain name (letters, digits, '_+=.-', no '..' or '/')"
    variant = record.get("variant")
    if variant is not None and (not isinstance(variant, str) or not SAFE_NAME.fullmatch(variant) or ".." in variant):
        return f"variant {variant!r} is not a plain name"
    if not _is_whole(record["seed"]) or record["seed"] < 0:
        return f"seed {record['seed']!r} is not a whole number >= 0"
    if record["channel"] != ALL_CHANNELS and (not _is_whole(record["channel"]) or record["channel"] < 0):
        return f"channel {record['channel']!r} is neither a channel index nor {ALL_CHANNELS!r}"
    for key in ("mae", "rmse"):
        if not _is_finite(record[key]):
            return f"{key} {record[key]!r} is not a finite number"
    horizon = record["per_horizon"]
    if not isinstance(horizon, dict) or not all(isinstance(horizon.get(key), list) and all(map(_is_finite, horizon[key]))
                                                for key in ("mae", "rmse")):
        return "per_horizon is not {mae: [numbers], rmse: [numbers]}"
    if not isinstance(record["settings"], dict):
        return f"settings is a {type(record['settings']).__name__}, not a mapping"
    if not _is_whole(record["n_windows"]) or not _is_whole(record["epochs"]) or not isinstance(record["val_curve"], list):
        return "n_windows and epochs must be whole numbers and val_curve a list"
    if "per_window" in record and (problem := per_window_problem(record["per_window"])):
        return problem
    if record["stop_reason"] not in STOP_REASONS:
        return f"unknown stop_reason {record['stop_reason']!r}"
    return None


def check_record(record: Any, where: str | Path) -> dict[str, Any]:
    """``record`` if it is a well-formed ledger record: every field a table or a record's name reads is checked."""
    if not isinstance(record, dict):
        raise DataError(f"{where}: not a ledger record (expected a JSON object)")
    if "channel" in record and record["channel"] is None:  # written before ALL_CHANNELS was spelled out
        record = record | {"channel": ALL_CHANNELS}
    missing = [key for key in REQUIRED if key not in record]
    if missing:
        raise DataError(f"{where}: not a ledger record (missing {', '.join(missing)})")
    problem = _record_problem(record)
    if problem:
        raise DataError(f"{where}: not a usable ledger record ({problem})")
    return record


def add(sources: list[str | Path], root: str | Path | None = None) -> list[Path]:
    """Records for finished run folders, or record files from another ledger (another machine's), each
    written under the name this code gives it; all are checked before any is written."""
    chosen = ledger_root(root)
    if chosen is None:
        raise DataError(f"no ledger folder: pass --ledger or set {LEDGER_ENV}")
    records = []
    for source in map(Path, sources):
        if source.is_file() and source.suffix == ".json":
            records += [{key: value for key, value in record.items() if key != "ledger_file"}
                        for record in read_records([source])]
        else:
            records.append(check_record(build_record(source), source))
    written = []
    for record in records:
        path = chosen / record["dataset"] / f"{record_name(record)}.json"  # names checked by check_record
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, record)
        written.append(path)
    return written


def record_finished(run: Path, payload: dict[str, Any]) -> None:
    """``fit``'s ``finished`` hook: when a ledger is set (``$STVFM_LEDGER``), record the run that just
    finished there and name the record in the payload ``fit`` returns."""
    root = ledger_root()
    if root is not None:
        payload["ledger_record"] = str(add([run], root)[0])


def read_records(paths: list[str | Path]) -> list[dict[str, Any]]:
    """Every record in these files or folders (searched recursively), checked."""
    records = []
    for path in map(Path, paths):
        files = sorted(path.rglob("*.json")) if path.is_dir() else [path]
        for file in files:
            try:
                payload = json.loads(file.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
                raise DataError(f"{file}: not a readable ledger record ({error})") from None
            records.append(check_record(payload, file) | {"ledger_file": str(file)})
    return records
