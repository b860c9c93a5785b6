"""What ``stvfm reproduce`` runs: the experiments' planned runs, their folder names, and the typed
``ReproduceConfig`` that turns each planned run and seed into a ``RunConfig``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stvfm.data.series import channel_flag
from stvfm.errors import ConfigError
from stvfm.models.registry import get_model_entry, list_models, resolved_options
from stvfm.training.config import RunConfig
from stvfm.training.recipes import resolve_run_config
from stvfm.training.settings import PLACEMENT, check_overrides, declared, merged

EXECUTORS = ("local", "submitit", "submitit-local")
EXPERIMENTS = ("main", "ablation", "backbones", "video", "lambda", "pretraining", "efficiency")
#: Flow-loss weights of the lambda sweep (the paper plots a sweep without listing its values).
LAMBDAS = (0.0, 0.25, 0.5, 1.0, 2.0)

@dataclass(frozen=True)
class PlannedRun:
    """One row of a report: a model with options, run once per seed."""

    label: str
    model: str
    options: dict[str, Any] = field(default_factory=dict)
    paper_row: str | None = None  # row of the experiment's paper table, None where the paper has none
    reference: bool = False  # the row others are compared with for the seed-spread check


def plan(experiment: str) -> list[PlannedRun]:
    """The runs of ``experiment``, in report order."""
    full = PlannedRun("ST-VFM (DINOv2-S)", "stvfm", paper_row="stvfm", reference=True)
    if experiment == "main":
        rows = [PlannedRun(entry.name, entry.name, paper_row=entry.name)
                for entry in list_models() if entry.name != "stvfm"]
        return rows + [full]
    if experiment == "ablation":
        variants = [("#1 simple", "simple"), ("#2 token-adapt", "token-adapt"),
                    ("#3 temporal-encoder", "temporal-encoder"), ("#4 adapter", "adapter")]
        rows = [PlannedRun(label, "stvfm", {"variant": variant}, paper_row=variant) for label, variant in variants]
        return [rows[0], PlannedRun("UniST", "unist", paper_row="unist"), *rows[1:],
                dataclasses.replace(full, label="full", paper_row="full")]
    if experiment == "backbones":
        return [PlannedRun("UniST", "unist", paper_row="unist"),
                PlannedRun("ST-VFM (CLIP-B/16)", "stvfm", {"backbone": "clip-b16"}, paper_row="clip-b16"),
                PlannedRun("ST-VFM (DeiT-B)", "stvfm", {"backbone": "deit-b"}, paper_row="deit-b"),
                dataclasses.replace(full, paper_row="dinov2-s")]
    if experiment == "video":
        return [PlannedRun("SimVP", "simvp", paper_row="simvp"),
                PlannedRun("ST-VFM (VideoMAE-S)", "stvfm", {"backbone": "videomae-s"}, paper_row="videomae-s"),
                dataclasses.replace(full, paper_row="dinov2-s")]
    if experiment == "lambda":
        return [PlannedRun(f"lambda = {weight:g}", "stvfm", {"flow_weight": weight}, reference=weight == 1.0)
                for weight in LAMBDAS]
    if experiment == "pretraining":
        return [dataclasses.replace(full, label="DINOv2-S real weights, frozen", paper_row=None),
                PlannedRun("DINOv2-S random init, frozen", "stvfm", {"weights": "random"}),
                PlannedRun("DINOv2-S random init, trained", "stvfm", {"weights": "random", "train_backbone": True})]
    if experiment == "efficiency":  # supplement Table 1: times as ratios to UniST, all measured in one command
        return [PlannedRun("UniST", "unist", paper_row="unist"),
                PlannedRun("#4 adapter", "stvfm", {"variant": "adapter"}, paper_row="adapter"),
                dataclasses.replace(full, label="full", paper_row="full")]
    raise ConfigError(f"unknown experiment {experiment!r}; known: {', '.join(EXPERIMENTS)}")


def run_key(run: PlannedRun) -> str:
    """Folder name of a run: the model plus the options that differ from its defaults."""
    defaults, chosen = resolved_options(run.model), resolved_options(run.model, run.options)
    changed = [f"{key}-{value}" for key, value in sorted(chosen.items()) if value != defaults[key]]
    return "_".join([run.model, *changed]).replace("/", "-").replace(" ", "")


#: What ``--quick`` makes of every fit, under the settings given: a smoke run whose numbers mean nothing.
QUICK_SETTINGS = {"max_epochs": 1, "limit_train_batches": 8, "optim": {"warmup_epochs": 0.1}}


@dataclass
class ReproduceConfig:
    """What ``stvfm reproduce`` runs: its own orchestration fields, and ``settings``, the run settings
    (``RunConfig`` fields) every fit takes over its defaults, or over each model's recipe with ``recipes``."""

    experiment: str
    dataset: str
    out: str
    quick: bool = False
    report_dir: str | None = None  # None: ``out``; e.g. docs/results to keep reports apart from the runs
    report_only: bool = False  # train nothing: report the finished runs, list the others as not run
    # Ledger folder whose records stand in for runs of the same settings and budget that have no
    # finished folder here (a report rebuilt on a fresh clone, results gathered elsewhere).
    ledger: str | None = None
    seeds: tuple[int, ...] | None = None  # None: (0, 1, 2), or (0,) with quick
    # Every model at its own published recipe (stvfm/recipes) instead of RunConfig's defaults; the
    # settings given (max_minutes, max_epochs, ...) still apply to every fit.
    recipes: bool = False
    # Where the independent fits run: "local" (this process, one after another), or through
    # submitit: "submitit" (SLURM when there is one, else local processes) or "submitit-local".
    executor: str = "local"
    # RunConfig settings of every fit (model_options aside), e.g. {"max_epochs": 50, "optim": {"lr": 1e-3}}.
    settings: dict[str, Any] = field(default_factory=dict)
    # Model options (``--set``) for every planned run whose model has them; they show in folder names.
    model_options: dict[str, Any] = field(default_factory=dict)
    # Extra model options per planned run, applied last (tests shrink models with it); not in folder names.
    extra_options: Callable[[PlannedRun], dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        if self.experiment not in EXPERIMENTS:
            raise ConfigError(f"unknown experiment {self.experiment!r}; known: {', '.join(EXPERIMENTS)}")
        if self.executor not in EXECUTORS:
            raise ConfigError(f"unknown executor {self.executor!r}; choose one of {', '.join(EXECUTORS)}")
        if self.seeds is not None and not self.seeds:
            raise ConfigError("at least one seed is needed")
        if {"model", "dataset", "out", "seed", "model_options"} & set(self.settings):
            raise ConfigError("settings: model, dataset, out, seed and model options are the experiment's to set")
        check_overrides(self.settings)
        self.planned_runs()  # a --set option no run has, or one the experiment varies, is an error now

    def planned_runs(self) -> list[PlannedRun]:
        """The experiment's runs with the ``--set`` options added where the model has them."""
        runs, unused = [], set(self.model_options)
        for run in plan(self.experiment):
            known = resolved_options(run.model)
            chosen = {key: value for key, value in self.model_options.items() if key in known}
            varied = sorted(set(chosen) & set(run.options))
            if varied:
                raise ConfigError(f"--set {varied[0]}: the {self.experiment} experiment sets it per run ({run.label})")
            unused -= set(chosen)
            runs.append(dataclasses.replace(run, options={**chosen, **run.options}) if chosen else run)
        if unused:
            raise ConfigError(f"--set {sorted(unused)[0]}: no model of the {self.experiment} experiment has this option")
        return runs

    @property
    def seed_list(self) -> tuple[int, ...]:
        return self.seeds if self.seeds is not None else ((0,) if self.quick else (0, 1, 2))

    @property
    def given(self) -> dict[str, Any]:
        """The settings every fit takes over its defaults or recipe: ``--quick``'s, then those given."""
        return merged(QUICK_SETTINGS if self.quick else {}, self.settings)

    def setting(self, name: str) -> Any:
        """A setting every fit shares that no recipe sets (channel, steps, max_minutes): given, else the default."""
        return self.given[name] if name in self.given else declared(name)[0].default

    def seeds_for(self, run: PlannedRun) -> tuple[int, ...]:
        """Classical models are deterministic: one seed is the whole spread (std 0)."""
        return self.seed_list if get_model_entry(run.model).cls.trainable else self.seed_list[:1]

    def run_config(self, run: PlannedRun, seed: int) -> RunConfig:
        options = {**run.options, **(self.extra_options(run) if self.extra_options else {})}
        folder = (Path(self.out) / "runs" / f"{Path(self.dataset).stem}-ch{self.setting('channel')}" / run_key(run)
                  / f"{'recipe-' if self.recipes else ''}seed-{seed}")
        flags = self.given | {"model": run.model, "dataset": self.dataset, "out": str(folder), "seed": seed,
                              "model_options": options}
        return resolve_run_config(flags, use_recipe=self.recipes)


def reproduce_command(config: ReproduceConfig) -> str:
    """The command line that reruns ``config`` (its placement settings, as this machine's, left out)."""
    parts = ["stvfm reproduce", f"--experiment {config.experiment}", f"--dataset {config.dataset}",
             f"--out {config.out}"]
    if config.report_dir:
        parts.append(f"--report-dir {config.report_dir}")
    if config.quick:
        parts.append("--quick")
    if config.seeds is not None:
        parts += [f"--seed {seed}" for seed in config.seeds]
    given = {**config.settings, **{f"optim.{key}": value for key, value in config.settings.get("optim", {}).items()}}
    for name, value in given.items():
        if name == "optim" or declared(name)[0].metadata.get("role") == PLACEMENT:
            continue
        flag = (declared(name)[0].metadata.get("flag") or (f"--{name.rpartition('.')[2].replace('_', '-')}",))[0]
        parts.append(f"{flag} {channel_flag(value) if name == 'channel' else value}")
    if config.recipes:
        parts.append("--recipes")
    if config.ledger:
        parts.append(f"--ledger {config.ledger}")
    parts += [f"--set {key}={value}" for key, value in config.model_options.items()]
    return " ".join(parts)
