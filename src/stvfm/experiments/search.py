"""``stvfm search``: an Optuna search of the training recipe, chosen on validation only.

Each trial is an ordinary ``fit`` run in ``OUT/trials/trial-N``: the model's recipe
(``stvfm/recipes``) for everything not searched, with a draw from ``SPACE`` (learning rate,
batch size, warm-up, weight decay, EMA weight averaging, and the model's dropout and flow
weight where it has them and ``--set`` does not fix them), under one per-trial budget
(epochs, training batches, minutes). Its objective is the best validation ``SELECTION_METRIC`` the run's
checkpoint kept; test figures are never read. The study lives in an RDB storage (SQLite), so a
search resumes after a kill and several workers can share it: ``trials`` is the total the
study should reach, a trial whose worker died (no heartbeat) is retried with the same recipe
in the same folder, so its run resumes from ``last.ckpt``. Poor trials are pruned by Optuna's
Lightning callback against the median of earlier trials at the same epoch.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stvfm.atomic import write_json_atomic, write_text_atomic
from stvfm.errors import ConfigError
from stvfm.ledger import record_finished
from stvfm.models.registry import resolved_options
from stvfm.training.config import RunConfig
from stvfm.training.recipes import resolve_run_config
from stvfm.training.runner import fit
from stvfm.training.settings import SEARCH_TRIAL_DEFAULTS, check_overrides, declared, merged
from stvfm.training.trainer import SELECTION_METRIC

#: What is searched: name -> (low, high, log scale); ``batch_size`` draws from ``SearchConfig.batch_sizes``.
#: The warm-up is a fraction of the trial's epochs, so one study can mix budgets without changing its space.
SPACE: dict[str, tuple[float, float, bool]] = {
    "lr": (1e-4, 2e-3, True),
    "weight_decay": (1e-6, 1e-1, True),
    "warmup_fraction": (0.0, 0.3, False),
    "dropout": (0.0, 0.3, False),  # model option, where the model has it
    "flow_weight": (0.1, 2.0, True),  # model option (ST-VFM's lambda), where the model has it
}
MODEL_OPTIONS = ("dropout", "flow_weight")
#: EMA decays tried (0: none); at batch 8 a taxinyc1 epoch is 250 steps, so 0.999 averages over ~4 epochs.
EMA_DECAYS = (0.0, 0.99, 0.999)
#: Seconds between a running trial's heartbeats, and silence after which its worker counts as dead.
HEARTBEAT_S, GRACE_S = 30, 120
SUMMARY_NAME = "search-summary"


@dataclass
class SearchConfig:
    """A study (name + storage), what it searches over, and ``settings``: the run settings (``RunConfig``
    fields) of every trial over the model's recipe and ``SEARCH_TRIAL_DEFAULTS``; its ``model_options``
    are fixed for every trial, and fixed options are not searched."""

    dataset: str
    storage: str  # an Optuna RDB URL, e.g. sqlite:///runs/search/study.db
    out: str  # trial runs under OUT/trials, the summary beside them
    study_name: str = "recipe"
    model: str = "stvfm"
    trials: int = 20  # finished (complete or pruned) trials the study should reach, all workers together
    batch_sizes: tuple[int, ...] = (8, 16, 32)
    sampler_seed: int | None = None  # None: workers sharing a study draw differently
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if "://" not in self.storage:
            raise ConfigError(f"--storage must be a database URL such as sqlite:///study.db, got {self.storage!r}")
        if {"model", "dataset", "out", "batch_size"} & set(self.settings):
            raise ConfigError("settings: model, dataset, out and batch size are the search's to set")
        check_overrides(self.settings)
        if self.trials < 1 or self.trial["max_epochs"] < 1:
            raise ConfigError("trials and max epochs must be >= 1")
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise ConfigError(f"batch sizes must be positive, got {self.batch_sizes}")
        self.batch_sizes = tuple(self.batch_sizes)
        resolved_options(self.model, self.model_options)  # unknown model or option: ConfigError now

    @property
    def trial(self) -> dict[str, Any]:
        """The settings every trial takes over the model's recipe."""
        return SEARCH_TRIAL_DEFAULTS | self.settings

    @property
    def model_options(self) -> dict[str, Any]:
        return self.settings.get("model_options", {})

    @property
    def searched_options(self) -> tuple[str, ...]:
        """Model options searched: those the model has and ``model_options`` leaves open."""
        known = resolved_options(self.model)
        return tuple(name for name in MODEL_OPTIONS if name in known and name not in self.model_options)

    def budget(self) -> dict[str, Any]:
        """Each trial's budget as given (a setting not here is the recipe's)."""
        return {name: value for name, value in self.trial.items()
                if name in ("max_epochs", "max_minutes", "patience", "limit_train_batches", "precision", "seed")}


def _suggest(trial, name: str) -> float:
    low, high, log = SPACE[name]
    return trial.suggest_float(name, low, high, log=log)


def trial_run_config(trial, config: SearchConfig) -> RunConfig:
    """The ``fit`` run of one trial: the model's recipe, with the study's budget and fixed options and
    the trial's draws over it; a retried trial gets the folder of the trial it repeats, to resume there."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    batch_size = trial.suggest_categorical("batch_size", list(config.batch_sizes))
    optim = {"lr": _suggest(trial, "lr"), "weight_decay": _suggest(trial, "weight_decay"),
             "warmup_epochs": _suggest(trial, "warmup_fraction") * config.trial["max_epochs"],
             "ema_decay": trial.suggest_categorical("ema_decay", list(EMA_DECAYS))}
    options = {**config.model_options, **{name: _suggest(trial, name) for name in config.searched_options}}
    frozen = next(past for past in trial.study.get_trials(deepcopy=False) if past.number == trial.number)
    number = RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
    folder = Path(config.out) / "trials" / f"trial-{trial.number if number is None else number}"
    drawn = {"model": config.model, "dataset": config.dataset, "out": str(folder), "model_options": options,
             "batch_size": batch_size, "optim": optim}
    return resolve_run_config(merged(config.trial, drawn))


def _objective(trial, config: SearchConfig) -> float:
    import optuna
    from optuna_integration import PyTorchLightningPruningCallback

    run = trial_run_config(trial, config)
    trial.set_user_attr("folder", run.out)
    metrics = fit(run, callbacks=[PyTorchLightningPruningCallback(trial, monitor=SELECTION_METRIC)],
                  finished=record_finished)
    if metrics.get("best_val_score") is None:
        raise optuna.TrialPruned("the trial's budget ended before its first validation")
    trial.set_user_attr("epochs", metrics["epochs"])
    return float(metrics["best_val_score"])


def open_study(config: SearchConfig):
    """The study in its storage, created on first use; its dead workers' trials are retried."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    # SQLite: wait for another worker's write lock instead of failing at once
    engine = {"connect_args": {"timeout": 60}} if config.storage.startswith("sqlite") else {}
    if config.storage.startswith("sqlite:///"):
        Path(config.storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    storage = RDBStorage(config.storage, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                         heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=2))
    return optuna.create_study(
        study_name=config.study_name, storage=storage, direction="minimize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=config.sampler_seed, n_startup_trials=5),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
    )


def search(config: SearchConfig) -> dict[str, Any]:
    """Run trials until the study holds ``config.trials`` finished ones, then write its summary."""
    import optuna
    from optuna.study import MaxTrialsCallback

    study = open_study(config)
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    remaining = config.trials - len(study.get_trials(deepcopy=False, states=finished))
    if remaining > 0:
        study.optimize(lambda trial: _objective(trial, config), n_trials=remaining,
                       callbacks=[MaxTrialsCallback(config.trials, states=finished)])
    return write_summary(study, config)


def _validation_at_best(folder: Path) -> dict[str, float]:
    """Validation figures of the epoch with the lowest ``SELECTION_METRIC`` in a run's CSV log."""
    path = folder / "logs" / "metrics.csv"
    if not path.is_file():
        return {}
    with open(path, newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get(SELECTION_METRIC)]
    if not rows:
        return {}
    best = min(rows, key=lambda row: float(row[SELECTION_METRIC]))
    names = {SELECTION_METRIC: "val_mse_st", "val/rmse": "val_rmse", "val/mae": "val_mae", "epoch": "epoch"}
    return {short: float(best[name]) for name, short in names.items() if best.get(name)}


def write_summary(study, config: SearchConfig) -> dict[str, Any]:
    """``OUT/search-summary.json`` and ``.md``: budget, space, every trial and the best, validation only."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    trials = []
    for trial in study.get_trials(deepcopy=False):
        folder = trial.user_attrs.get("folder")
        trials.append({
            "number": trial.number, "state": trial.state.name, "value": trial.value, "params": trial.params,
            "retry_of": RetryHeartbeatStaleTrialCallback.retried_trial_number(trial),
            "epochs": trial.user_attrs.get("epochs", len(trial.intermediate_values) or None),
            "seconds": trial.duration.total_seconds() if trial.duration else None, "folder": folder,
            "validation": _validation_at_best(Path(folder)) if folder else {},
        })
    complete = [trial for trial in trials if trial["state"] == "COMPLETE"]
    best = min(complete, key=lambda trial: trial["value"]) if complete else None
    summary = {"study": config.study_name, "storage": config.storage, "dataset": config.dataset,
               "channel": config.trial.get("channel", declared("channel")[0].default), "model": config.model,
               "fixed_model_options": config.model_options,
               "base": f"the {config.model} recipe (stvfm/recipes), its per-dataset overrides included",
               "objective": f"lowest best-checkpoint {SELECTION_METRIC} (validation, scaled units); test never read",
               "budget_per_trial": config.budget(), "batch_sizes": list(config.batch_sizes),
               "ema_decays": list(EMA_DECAYS),
               "space": {name: SPACE[name] for name in ("lr", "weight_decay", "warmup_fraction",
                                                        *config.searched_options)},
               "trials_target": config.trials, "best": best, "trials": trials}
    out = Path(config.out)
    write_json_atomic(out / f"{SUMMARY_NAME}.json", summary)
    write_text_atomic(out / f"{SUMMARY_NAME}.md", _markdown(summary))
    summary["paths"] = {"json": str(out / f"{SUMMARY_NAME}.json"), "markdown": str(out / f"{SUMMARY_NAME}.md")}
    return summary


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _markdown(summary: dict[str, Any]) -> str:
    budget = summary["budget_per_trial"]
    params = list(summary["space"]) + ["batch_size", "ema_decay"]
    lines = [f"# Recipe search `{summary['study']}`: {summary['model']} on {summary['dataset']} "
             f"(channel {summary['channel']})", "",
             f"Base: {summary['base']}. Objective: {summary['objective']}. Budget per trial: {json.dumps(budget)}; batch sizes "
             f"{summary['batch_sizes']}; fixed model options {json.dumps(summary['fixed_model_options'])}. "
             f"Storage `{summary['storage']}`.", ""]
    best = summary["best"]
    if best:
        lines += [f"Best: trial {best['number']}, {SELECTION_METRIC} {best['value']:.5g}, validation RMSE "
                  f"{_number(best['validation'].get('val_rmse'))} / MAE {_number(best['validation'].get('val_mae'))}; "
                  f"recipe {json.dumps(best['params'])}.", ""]
    lines += ["| trial | state | " + " | ".join(params) + f" | {SELECTION_METRIC} | val RMSE | val MAE | epochs | s |",
              "|" + "---|" * (len(params) + 7)]
    ordered = sorted(summary["trials"], key=lambda trial: (trial["value"] is None, trial["value"] or 0.0))
    for trial in ordered:
        validation = trial["validation"]
        lines.append(f"| {trial['number']} | {trial['state'].lower()} | "
                     + " | ".join(_number(trial["params"].get(name)) for name in params)
                     + f" | {_number(trial['value'])} | {_number(validation.get('val_rmse'))} "
                     f"| {_number(validation.get('val_mae'))} | {_number(trial['epochs'])} | {_number(trial['seconds'])} |")
    return "\n".join(lines) + "\n"
