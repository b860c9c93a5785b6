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
from stvfm.training.optim import OptimConfig
from stvfm.training.recipes import resolve_run_config

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


@dataclass
class ReproduceConfig:
    """What ``stvfm reproduce`` runs; ``quick`` shrinks every fit to a smoke run."""

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
    channel: int | str = 0  # an index or ALL_CHANNELS
    steps: int | None = None
    max_epochs: int | None = None  # None: 200 (early stopping decides), or 1 with quick
    max_minutes: float | None = None  # per run
    limit_train_batches: float | int | None = None  # None: every batch (8 with quick); a step budget with max_epochs
    precision: str | None = None  # None: the recipe's with recipes, else "32"
    batch_size: int | None = None
    lr: float = OptimConfig.lr
    # Every model at its own published recipe (stvfm/recipes) instead of one shared optimiser
    # recipe; budget options given (max_minutes, max_epochs, ...) still apply to every fit.
    recipes: bool = False
    # Where the independent fits run: "local" (this process, one after another), or through
    # submitit: "submitit" (SLURM when there is one, else local processes) or "submitit-local".
    executor: str = "local"
    warmup_epochs: float | None = None  # None: 5 (0.1 with quick)
    data_root: str | None = None
    progress: bool = True
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
    def train_batches(self) -> float | int:
        if self.limit_train_batches is not None:
            return self.limit_train_batches
        return 8 if self.quick else 1.0

    @property
    def warmup(self) -> float:
        if self.warmup_epochs is not None:
            return self.warmup_epochs
        return 0.1 if self.quick else 5.0

    def seeds_for(self, run: PlannedRun) -> tuple[int, ...]:
        """Classical models are deterministic: one seed is the whole spread (std 0)."""
        return self.seed_list if get_model_entry(run.model).cls.trainable else self.seed_list[:1]

    def run_config(self, run: PlannedRun, seed: int) -> RunConfig:
        options = {**run.options, **(self.extra_options(run) if self.extra_options else {})}
        folder = Path(self.out) / "runs" / f"{Path(self.dataset).stem}-ch{self.channel}" / run_key(run) / f"seed-{seed}"
        if self.recipes:
            folder = folder.with_name(f"recipe-seed-{seed}")
            return self._recipe_run_config(run.model, options, seed, folder)
        return RunConfig(
            model=run.model, dataset=self.dataset, out=str(folder), channel=self.channel, steps=self.steps,
            model_options=options, max_epochs=self.max_epochs or (1 if self.quick else 200),
            max_minutes=self.max_minutes, limit_train_batches=self.train_batches,
            batch_size=self.batch_size, precision=self.precision or "32", seed=seed,
            optim=OptimConfig(lr=self.lr, warmup_epochs=self.warmup),
            data_root=self.data_root, progress=self.progress,
        )

    def _recipe_run_config(self, model: str, options: dict[str, Any], seed: int, folder: Path) -> RunConfig:
        """The model's recipe, with the budget options given here on top."""
        budget = {"max_epochs": self.max_epochs or (1 if self.quick else None), "max_minutes": self.max_minutes,
                  "limit_train_batches": self.limit_train_batches if self.limit_train_batches is not None
                  else (8 if self.quick else None),
                  "batch_size": self.batch_size, "precision": self.precision}
        flags = {"model": model, "dataset": self.dataset, "out": str(folder), "channel": self.channel,
                 "steps": self.steps, "model_options": options, "seed": seed, "data_root": self.data_root,
                 "progress": self.progress, **{key: value for key, value in budget.items() if value is not None}}
        if self.warmup_epochs is not None:
            flags["optim"] = {"warmup_epochs": self.warmup_epochs}
        return resolve_run_config(flags)


def reproduce_command(config: ReproduceConfig) -> str:
    parts = ["stvfm reproduce", f"--experiment {config.experiment}", f"--dataset {config.dataset}",
             f"--out {config.out}"]
    if config.report_dir:
        parts.append(f"--report-dir {config.report_dir}")
    if config.quick:
        parts.append("--quick")
    if config.seeds is not None:
        parts += [f"--seed {seed}" for seed in config.seeds]
    if config.channel != 0:
        parts.append(f"--channel {channel_flag(config.channel)}")
    for flag, value in (("--steps", config.steps), ("--max-epochs", config.max_epochs),
                        ("--max-minutes", config.max_minutes), ("--batch-size", config.batch_size),
                        ("--limit-train-batches", config.limit_train_batches),
                        ("--warmup-epochs", config.warmup_epochs)):
        if value is not None:
            parts.append(f"{flag} {value}")
    if config.precision not in (None, "32"):
        parts.append(f"--precision {config.precision}")
    if config.recipes:
        parts.append("--recipes")
    if config.ledger:
        parts.append(f"--ledger {config.ledger}")
    if config.lr != OptimConfig.lr:
        parts.append(f"--lr {config.lr:g}")
    parts += [f"--set {key}={value}" for key, value in config.model_options.items()]
    return " ".join(parts)
