"""``stvfm reproduce``: the paper's experiments as planned fits, a Markdown report and CSV files.

An experiment is a list of planned runs (a row label, a model and its options). Every run of
every seed gets its own folder under ``OUT/runs``, named by the model and the options that
differ from the model's defaults, so a configuration shared by several experiments (ST-VFM
full appears in all of them) is trained once. A folder whose ``metrics.json`` was written by
the same run (``RunConfig.identity``) and budget is reused; one of a smaller budget is extended;
one of another run stops the command; a folder with only ``last.ckpt`` resumes. A run that fails is reported as failed, never dropped.

Several processes (cores, machines sharing a file system) can run the same experiment into one
``OUT``: each claims a run with a ``.running`` file before fitting it and leaves runs claimed by
a live process to their owner, reporting them as busy; re-running the command once all have
finished writes the complete report.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
import socket
import statistics
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from stvfm.atomic import write_text_atomic
from stvfm.errors import ConfigError, StvfmError
from stvfm.experiments.paper import EFFICIENCY, paper_figure
from stvfm.models.registry import get_model_entry, list_models, resolved_options
from stvfm.reports.tables import load_metrics
from stvfm.training.folders import in_progress
from stvfm.training.optim import OptimConfig
from stvfm.training.recipes import resolve_run_config
from stvfm.training.runner import RunConfig, fit

EXECUTORS = ("local", "submitit", "submitit-local")
EXPERIMENTS = ("main", "ablation", "backbones", "video", "lambda", "pretraining", "efficiency")
#: Flow-loss weights of the lambda sweep (the paper plots a sweep without listing its values).
LAMBDAS = (0.0, 0.25, 0.5, 1.0, 2.0)
#: File that marks a run folder as being trained by a process (host:pid inside).
LOCK_NAME = ".running"
#: Why the last attempt at a run failed (its traceback for an unexpected error), read by --report-only.
ERROR_NAME = "error.txt"


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
    seeds: tuple[int, ...] | None = None  # None: (0, 1, 2), or (0,) with quick
    channel: int | None = 0
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


@dataclass
class RunOutcome:
    label: str
    seed: int
    folder: Path
    status: str  # "trained" | "reused" | "failed: <reason>" | "busy: <owner>" | "missing: <why>"
    metrics: dict[str, Any] | None


def _finished(config: RunConfig) -> dict[str, Any] | None:
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
    """Every planned run and seed: reused when finished, fitted (or resumed) otherwise, left to its owner when busy."""
    planned = [(run, seed, config.run_config(run, seed)) for run in config.planned_runs() for seed in config.seeds_for(run)]
    if config.executor != "local" and not config.report_only:
        from stvfm.experiments.fanout import run_on_executor

        finished = [_finished(run_config) for _, _, run_config in planned]
        pending = [item for item, metrics in zip(planned, finished) if metrics is None]
        sent = iter(run_on_executor(config, pending, announce) if pending else [])
        results = [("reused", metrics) if metrics is not None else next(sent) for metrics in finished]
    else:
        results = [_run_or_reuse(config, run, run_config, announce) for run, _, run_config in planned]
    return [RunOutcome(run.label, seed, Path(run_config.out), *result)
            for (run, seed, run_config), result in zip(planned, results)]


def _run_or_reuse(config: ReproduceConfig, run: PlannedRun, run_config: RunConfig,
                  announce: Callable[[str], None]) -> tuple[str, dict[str, Any] | None]:
    metrics = _finished(run_config)
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
        metrics = _finished(run_config)  # another process may have finished it just before the claim
        if metrics is not None:
            return "reused", metrics
        announce(f"{config.experiment}: {run.label}, seed {run_config.seed} -> {folder}")
        metrics = fit(run_config)
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


@dataclass
class ReportRow:
    run: PlannedRun
    outcomes: list[RunOutcome]
    paper: tuple[float, float] | None

    @property
    def finished(self) -> list[dict[str, Any]]:
        return [outcome.metrics for outcome in self.outcomes if outcome.metrics]

    def stat(self, metric: str) -> tuple[float, float] | None:
        """(mean, sample std) over seeds; std is NaN with one seed."""
        values = [metrics[metric] for metrics in self.finished]
        if not values:
            return None
        if len(values) == 1:
            return values[0], 0.0 if not get_model_entry(self.run.model).cls.trainable else math.nan
        return statistics.fmean(values), statistics.stdev(values)

    @property
    def weights(self) -> str:
        labels = {(metrics.get("weights") or {}).get("label") for metrics in self.finished} - {None}
        return ", ".join(sorted(labels)) or "-"


def report_rows(config: ReproduceConfig, outcomes: list[RunOutcome]) -> list[ReportRow]:
    dataset = Path(config.dataset).stem
    rows = []
    for run in config.planned_runs():
        # lambda and pretraining have no published table: paper_figure gives None
        paper = paper_figure(config.experiment, run.paper_row, dataset) if run.paper_row else None
        rows.append(ReportRow(run, [outcome for outcome in outcomes if outcome.label == run.label], paper))
    return rows


def _spread_verdict(row: ReportRow, reference: ReportRow | None) -> str:
    """Is the RMSE gap to the reference row larger than the two rows' seed spreads together?"""
    if reference is None or row is reference:
        return "reference" if row is reference else "-"
    mine, theirs = row.stat("rmse"), reference.stat("rmse")
    if mine is None or theirs is None:
        return "-"
    if math.isnan(mine[1]) or math.isnan(theirs[1]):
        return "one seed: no spread"
    gap = mine[0] - theirs[0]
    verdict = "larger than" if abs(gap) > mine[1] + theirs[1] else "within"
    return f"{gap:+.3f}, {verdict} seed spread"


def _format(stat: tuple[float, float] | None) -> str:
    if stat is None:
        return "-"
    mean, std = stat
    return f"{mean:.3f}" if math.isnan(std) else f"{mean:.3f} ± {std:.3f}"


def _csv(rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def write_report(config: ReproduceConfig, outcomes: list[RunOutcome]) -> dict[str, Path]:
    """``report.md``, ``summary.csv`` (one row per configuration) and ``runs.csv`` (one per seed)."""
    out = Path(config.report_dir or config.out)
    dataset = Path(config.dataset).stem
    rows = report_rows(config, outcomes)
    if config.experiment == "main":  # a leaderboard reads best first; the other tables keep the paper's row order
        rows.sort(key=lambda row: (row.stat("rmse") or (math.inf,))[0])
    reference = next((row for row in rows if row.run.reference), None)
    settings = config.run_config(rows[0].run, config.seed_list[0])
    lines = [
        f"# {config.experiment} on {dataset} (channel {config.channel})", "",
        f"Test split, original units. Seeds: {', '.join(map(str, config.seed_list))}; "
        f"mode: {'quick (smoke run, numbers mean nothing)' if config.quick else 'full'}; "
        f"max epochs {settings.max_epochs}, precision {config.precision}, lr {config.lr:g}, "
        f"warm-up {config.warmup:g} epochs, batch size {settings.batch_size or 'by grid size'}"
        + (f", {config.train_batches} training batches per epoch" if config.train_batches != 1.0 else "")
        + (f", at most {config.max_minutes:g} min per run" if config.max_minutes else "")
        + "".join(f", {key} = {value} for every run that has it" for key, value in config.model_options.items()) + ".",
        "Mean ± sample std over seeds. Paper: the published figure for the same dataset column, "
        "where the paper has one. A gap counts when it exceeds the two rows' std added together.", "",
        "| configuration | weights | seeds done | RMSE | MAE | paper RMSE | paper MAE | vs reference (RMSE) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    summary = [["experiment", "dataset", "channel", "configuration", "model", "options", "weights", "seeds_done",
                "rmse_mean", "rmse_std", "mae_mean", "mae_std", "paper_rmse", "paper_mae"]]
    for row in rows:
        rmse, mae = row.stat("rmse"), row.stat("mae")
        paper = row.paper or ("-", "-")
        lines.append(f"| {row.run.label} | {row.weights} | {len(row.finished)}/{len(row.outcomes)} | {_format(rmse)} "
                     f"| {_format(mae)} | {paper[0]} | {paper[1]} | {_spread_verdict(row, reference)} |")
        summary.append([config.experiment, dataset, config.channel, row.run.label, row.run.model,
                        run_key(row.run), row.weights, len(row.finished),
                        *(rmse or ("", "")), *(mae or ("", "")), *(row.paper or ("", ""))])
    for title, prefix in (("Failed runs", "failed: "), ("Runs still being trained elsewhere", "busy: "),
                          ("Runs not run yet", "missing: ")):
        listed = [outcome for outcome in outcomes if outcome.status.startswith(prefix)]
        if listed:
            lines += ["", f"## {title}", ""]
            lines += [f"- {outcome.label}, seed {outcome.seed} ({outcome.folder}): {outcome.status[len(prefix):]}"
                      for outcome in listed]
    per_run = [["configuration", "seed", "status", "rmse", "mae", "weights", "epochs", "seconds_per_epoch", "folder"]]
    for outcome in outcomes:
        metrics = outcome.metrics or {}
        per_run.append([outcome.label, outcome.seed, outcome.status, metrics.get("rmse", ""), metrics.get("mae", ""),
                        (metrics.get("weights") or {}).get("label", ""), metrics.get("epochs", ""),
                        metrics.get("seconds_per_epoch", ""), outcome.folder])
    if config.experiment == "efficiency":
        lines += efficiency_lines(rows)
    lines += ["", "Re-run: `" + reproduce_command(config) + "` (finished runs are reused).", ""]
    # options set for every run name the files too, so reports with and without them sit side by side
    stem = "-".join([config.experiment, dataset, *(f"{key}-{value}" for key, value in config.model_options.items())])
    figure = _horizon_figure(out / f"{stem}-horizons.png", outcomes, config.seed_list[0])
    if figure:
        lines += [f"![per-step RMSE and MAE, seed {config.seed_list[0]}]({figure.name})", ""]
    maps = _reference_maps(out / stem, reference, config.seed_list[0])
    lines += [f"![{caption}]({path.name})\n" for caption, path in maps]
    paths = {"report": out / f"{stem}.md", "summary": out / f"{stem}.csv", "runs": out / f"{stem}-runs.csv"}
    write_text_atomic(paths["report"], "\n".join(lines))
    write_text_atomic(paths["summary"], _csv(summary))
    write_text_atomic(paths["runs"], _csv(per_run))
    if figure:
        paths["figure"] = figure
    paths.update({f"maps-{index}": path for index, (_, path) in enumerate(maps)})
    return paths


def _run_times(metrics: dict[str, Any]) -> tuple[float, float] | None:
    """(training seconds per epoch, test-pass milliseconds per window) of a finished run."""
    if "seconds_per_epoch" not in metrics:
        return None
    return metrics["seconds_per_epoch"], (metrics["wall_seconds"] - metrics["train_seconds"]) / metrics["n_windows"] * 1e3


def efficiency_lines(rows: list[ReportRow]) -> list[str]:
    """Supplement Table 1: training and inference time as ratios to UniST's, since absolute times depend on the
    machine; only runs of one command on one machine compare (a reused run may come from another)."""
    times = {}
    for row in rows:
        measured = [pair for pair in map(_run_times, row.finished) if pair]
        if measured:
            times[row.run.label] = tuple(statistics.fmean(values) for values in zip(*measured))
    unist = times.get("UniST")
    paper_unist = EFFICIENCY["unist"]
    lines = ["", "## Training and inference time (supplement Table 1)", "",
             "Training: seconds per epoch; inference: the test pass per window (both means over seeds). "
             "Ratios to UniST in this run; the paper's ratios are from its Crowd table (one RTX A5500).", "",
             "| configuration | s / epoch | x UniST | inference ms / window | x UniST | paper training x UniST "
             "| paper inference x UniST |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        measured, paper = times.get(row.run.label), EFFICIENCY.get(row.run.paper_row or "")
        ratios = [f"{mine / base:.2f}" for mine, base in zip(measured, unist)] if measured and unist else ["-", "-"]
        paper_ratios = [f"{mine / base:.2f}" for mine, base in zip(paper[:2], paper_unist[:2])] if paper else ["-", "-"]
        figures = [f"{value:.2f}" for value in measured] if measured else ["-", "-"]
        lines.append(f"| {row.run.label} | {figures[0]} | {ratios[0]} | {figures[1]} | {ratios[1]} "
                     f"| {paper_ratios[0]} | {paper_ratios[1]} |")
    return lines


def _horizon_figure(path: Path, outcomes: list[RunOutcome], seed: int) -> Path | None:
    """Per-step errors of every configuration's first seed on one axis."""
    from stvfm.reports.plots import plot_horizon_curves

    shown = [outcome for outcome in outcomes if outcome.metrics and outcome.seed == seed]
    if not shown:
        return None
    return plot_horizon_curves([outcome.folder for outcome in shown], path, [outcome.label for outcome in shown])


def _reference_maps(stem: Path, reference: ReportRow | None, seed: int) -> list[tuple[str, Path]]:
    """Where the reference configuration fails: forecast vs truth for two busy test windows, error per cell."""
    from stvfm.reports.plots import plot_error_map, plot_forecast_grids

    run = next((outcome for outcome in (reference.outcomes if reference else []) if outcome.metrics
                and outcome.seed == seed and (outcome.folder / "predictions.npz").exists()), None)
    if run is None:
        return []
    title = f"{run.label}, seed {seed}"
    return [(f"{title}: truth, forecast and error, all 6 steps",
             plot_forecast_grids(run.folder, stem.with_name(stem.name + "-forecasts.png"), windows=2, title=title)),
            (f"{title}: mean absolute error per cell",
             plot_error_map(run.folder, stem.with_name(stem.name + "-error-map.png"), title=title))]


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
        parts.append(f"--channel {-1 if config.channel is None else config.channel}")
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
    if config.lr != OptimConfig.lr:
        parts.append(f"--lr {config.lr:g}")
    parts += [f"--set {key}={value}" for key, value in config.model_options.items()]
    return " ".join(parts)


def reproduce(config: ReproduceConfig, announce: Callable[[str], None] = lambda message: None
              ) -> tuple[list[RunOutcome], dict[str, Path]]:
    """Run (or reuse) every run of the experiment, then write its report."""
    outcomes = run_all(config, announce)
    return outcomes, write_report(config, outcomes)
