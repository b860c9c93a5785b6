"""The report of a reproduced experiment: ``report.md`` (with the paper's figures and the seed-spread
verdicts), ``summary.csv`` and ``runs.csv``."""

from __future__ import annotations

import csv
import io
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stvfm.atomic import write_text_atomic
from stvfm.experiments.paper import EFFICIENCY, paper_figure
from stvfm.experiments.plan import PlannedRun, ReproduceConfig, reproduce_command, run_key
from stvfm.experiments.schedule import RunOutcome
from stvfm.ledger import period_text, protocol_period, record_period
from stvfm.models.registry import get_model_entry


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


def _recipe_budget(config: ReproduceConfig) -> str:
    """What a report of runs at their own recipes can say for all of them: the settings given on top."""
    given = {**config.given, **config.given.get("optim", {})}
    names = (("max_epochs", "max epochs"), ("precision", "precision"), ("batch_size", "batch size"),
             ("limit_train_batches", "training batches per epoch"), ("warmup_epochs", "warm-up epochs"))
    return "every model at its own recipe (src/stvfm/recipes)" + "".join(
        f", {words} {given[name]}" for name, words in names if given.get(name) is not None)


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
    periods = {record_period(metrics) for row in rows for metrics in row.finished} or {protocol_period(dataset, config.setting("steps"))}
    span = period_text(periods.pop()) if len(periods) == 1 else "runs of several periods"
    lines = [
        f"# {config.experiment} on {dataset} (channel {config.setting('channel')}, {span})", "",
        f"Test split, original units. Seeds: {', '.join(map(str, config.seed_list))}; "
        f"mode: {'quick (smoke run, numbers mean nothing)' if config.quick else 'full'}; "
        + (_recipe_budget(config) if config.recipes else
           f"max epochs {settings.max_epochs}, precision {settings.precision}, lr {settings.optim.lr:g}, "
           f"warm-up {settings.optim.warmup_epochs:g} epochs, batch size {settings.batch_size or 'by grid size'}"
           + (f", {settings.limit_train_batches} training batches per epoch"
              if settings.limit_train_batches != 1.0 else ""))
        + (f", at most {settings.max_minutes:g} min per run" if settings.max_minutes else "")
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
        summary.append([config.experiment, dataset, config.setting("channel"), row.run.label, row.run.model,
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
            times[row.run.label] = tuple(statistics.fmean(values) for values in zip(*measured, strict=True))
    unist = times.get("UniST")
    paper_unist = EFFICIENCY["unist"]
    lines = ["", "## Training and inference time (supplement Table 1)", "",
             "Training: seconds per epoch; inference: the test pass per window (both means over seeds). "
             "Ratios to UniST in this run; the paper's ratios are from its Crowd table (one RTX A5500).", "",
             "| configuration | s / epoch | x UniST | inference ms / window | x UniST | paper training x UniST "
             "| paper inference x UniST |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        measured, paper = times.get(row.run.label), EFFICIENCY.get(row.run.paper_row or "")
        ratios = [f"{mine / base:.2f}" for mine, base in zip(measured, unist, strict=False)] if measured and unist else ["-", "-"]
        paper_ratios = [f"{mine / base:.2f}" for mine, base in zip(paper[:2], paper_unist[:2], strict=False)] if paper else ["-", "-"]
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
