"""Accuracy against compute, rebuilt from ledger records alone: which model is best after a given
amount of one's own CPU.

Each learned row's validation RMSE, best so far, against the core-seconds it had spent when it was
measured (wall seconds of training and validation x threads). Where a validation happened comes from
the most precise thing a record holds: wall seconds logged per epoch, else each sitting's seconds
spread evenly over the epochs it trained, else the run's training seconds spread evenly over its
epochs. A core-second of an AVX2 host buys less than one of an AVX512 host, so every point names its
host's vector units. Closed-form rows scored on validation stand beside them as references: they cost no
training, so what a learned model reaches is read against what a fit of seconds gives.

Core-seconds depend on the host; FLOPs do not. Each row's FLOPs per epoch are counted from its
settings (``training.flops``), so the same curves are also placed against the work done, which a
reader divides by their own machine's rate.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from stvfm.atomic import atomic_path, write_text_atomic
from stvfm.data.series import channel_flag
from stvfm.errors import StvfmError
from stvfm.experiments.ledger_report import ledger_rows
from stvfm.ledger import period_text, protocol_period, read_records, record_period
from stvfm.training.flops import EpochFlops, epoch_flops
from stvfm.training.stopping import EPOCH_SECONDS

#: Budgets the table reads the curves at: (core-seconds, label).
BUDGETS = ((600.0, "10 min"), (3600.0, "1 h"), (36000.0, "10 h"))
#: Budgets of work the second table reads them at: (FLOPs, label).
FLOP_BUDGETS = ((1e13, "0.01 PFLOP"), (1e14, "0.1 PFLOP"), (1e15, "1 PFLOP"))
#: How each record's epochs were placed in time, most precise first.
TIMINGS = {"logged": "wall seconds logged per epoch",
           "sittings": "each sitting's seconds spread evenly over its epochs",
           "total": "training seconds spread evenly over the epochs (records before per-epoch times)"}
UNRECORDED = "not recorded"
#: Plot markers by vector units torch dispatched to.
MARKERS = {"AVX512": "o", "AVX2": "^", UNRECORDED: "s"}
FINISHED = ("early stop", "epoch cap")


@dataclass(frozen=True)
class Validation:
    """One validation of a run: the compute spent up to it, and what it measured."""

    core_seconds: float
    val_rmse: float
    vector_units: str
    epochs: int  # epochs trained (and validated) up to it
    flops: float | None = None  # their counted FLOPs


@dataclass
class RunCompute:
    record: dict[str, Any]
    validations: list[Validation]
    timing: str
    #: False where the record holds no thread count and the machine's cores were counted instead.
    threads_recorded: bool
    #: None where the FLOPs could not be counted (the dataset is not on this machine).
    epoch: EpochFlops | None = None

    @property
    def spent(self) -> float:
        return self.validations[-1].core_seconds if self.validations else 0.0

    @property
    def flops_spent(self) -> float | None:
        return self.validations[-1].flops if self.validations else None

    @property
    def flop_rate(self) -> float | None:
        """Counted FLOPs per core-second: how well the model's work fits this CPU."""
        return self.flops_spent / self.spent if self.flops_spent and self.spent else None

    @property
    def finished(self) -> bool:
        return self.record["stop_reason"] in FINISHED

    @property
    def vector_units(self) -> set[str]:
        return {validation.vector_units for validation in self.validations}

    def best_at(self, core_seconds: float) -> float | None:
        """Best validation RMSE measured within ``core_seconds``; None before the first validation."""
        seen = [v.val_rmse for v in self.validations if v.core_seconds <= core_seconds]
        return min(seen) if seen else None

    def best_within_flops(self, flops: float) -> float | None:
        """Best validation RMSE measured within ``flops`` of counted work; None before the first
        validation or where FLOPs were not counted."""
        seen = [v.val_rmse for v in self.validations if v.flops is not None and v.flops <= flops]
        return min(seen) if seen else None


def _vector_units(value: str | None) -> str:
    return value.upper() if value else UNRECORDED


def run_compute(record: dict[str, Any], epoch: EpochFlops | None = None) -> RunCompute:
    """A record's validations placed on its core-seconds and, given its ``epoch``'s FLOPs, on its work."""
    machine = record.get("machine") or {}
    threads = record.get("threads") or machine.get("cores") or 1
    units = _vector_units(machine.get("cpu_capability"))
    curve = sorted((p for p in record.get("val_curve") or [] if "val/rmse" in p), key=lambda p: p["epoch"])
    # sitting i trained the epochs after the one sitting i-1 reached, up to its own epochs_reached
    sittings = [s for s in record.get("sittings") or [] if isinstance(s, dict)]
    spans, reached = [], 0
    for sitting in sittings:
        until = int(sitting.get("epochs_reached") or reached)
        spans.append((reached, until, sitting))
        reached = max(reached, until)

    def sitting_of(epochs_done: int) -> dict[str, Any]:
        return next((s for low, high, s in spans if low < epochs_done <= high), {})

    def core(seconds: float, sitting: dict[str, Any]) -> float:
        return seconds * (sitting.get("threads") or threads)

    def host(sitting: dict[str, Any]) -> str:
        return _vector_units(sitting.get("cpu_capability")) if sitting.get("cpu_capability") else units

    validations = []
    # logged seconds place a validation only when every epoch before it logged its own
    complete = [point["epoch"] for point in curve] == list(range(len(curve)))
    if curve and complete and all(EPOCH_SECONDS in point for point in curve):
        timing, total = "logged", 0.0
        for point in curve:
            sitting = sitting_of(point["epoch"] + 1)
            total += core(point[EPOCH_SECONDS], sitting)
            validations.append(Validation(total, point["val/rmse"], host(sitting), point["epoch"] + 1))
    elif spans:
        timing, at_epoch, total = "sittings", {}, 0.0
        for low, high, sitting in spans:
            spent = core(float(sitting.get("train_seconds") or 0.0), sitting)
            for done in range(low + 1, high + 1):
                at_epoch[done] = total + spent * (done - low) / (high - low)
            total += spent
        validations = [Validation(at_epoch[p["epoch"] + 1], p["val/rmse"], host(sitting_of(p["epoch"] + 1)),
                                  p["epoch"] + 1) for p in curve if p["epoch"] + 1 in at_epoch]
    else:
        timing = "total"
        seconds = float(record.get("total_train_seconds") or record.get("train_seconds") or 0.0)
        epochs = max(1, int(record.get("epochs") or len(curve)))
        validations = [Validation(seconds * threads * (p["epoch"] + 1) / epochs, p["val/rmse"], units, p["epoch"] + 1)
                       for p in curve]
    if epoch is not None:
        validations = [replace(v, flops=float(epoch.total * v.epochs)) for v in validations]
    recorded = bool(record.get("threads")) and all(s.get("threads") for s in sittings)
    return RunCompute(record, validations, timing, recorded, epoch)


@dataclass
class ComputeRow:
    label: str
    runs: list[RunCompute]

    @property
    def shown(self) -> RunCompute:
        """The run the figure draws: the lowest seed (the table averages every seed)."""
        return min(self.runs, key=lambda run: run.record["seed"])

    def at(self, budget: float) -> tuple[float, bool, float | None, int] | None:
        """(mean best validation RMSE within ``budget`` over the seeds validated by then, whether one of
        them was stopped by its time cap before the budget (so more compute could only lower it), mean
        test RMSE where every seed had finished within the budget, seeds counted); None before any
        validation."""
        measured = [(run, run.best_at(budget)) for run in self.runs]
        measured = [(run, value) for run, value in measured if value is not None]
        if not measured:
            return None
        capped = any(not run.finished and run.spent < budget for run, _ in measured)
        done = all(run.finished and run.spent <= budget for run in self.runs)
        test = statistics.fmean(run.record["rmse"] for run in self.runs) if done else None
        return statistics.fmean(value for _, value in measured), capped, test, len(measured)

    def at_flops(self, flops: float) -> tuple[float, bool, float | None, int] | None:
        """As ``at``, with the budget in counted FLOPs; None where no seed was counted or validated within it."""
        counted = [run for run in self.runs if run.epoch is not None]
        measured = [(run, run.best_within_flops(flops)) for run in counted]
        measured = [(run, value) for run, value in measured if value is not None]
        if not measured:
            return None
        capped = any(not run.finished and run.flops_spent < flops for run, _ in measured)
        done = all(run.finished and run.flops_spent <= flops for run in counted)
        test = statistics.fmean(run.record["rmse"] for run in counted) if done else None
        return statistics.fmean(value for _, value in measured), capped, test, len(measured)


@dataclass(frozen=True)
class Reference:
    """A closed-form row scored on validation: a level the learned rows' curves are read against."""

    label: str
    val_rmse: float
    test_rmse: float
    fitted_by: str


def references(records: list[dict[str, Any]], dataset: str, channel: int | str) -> list[Reference]:
    """The ledger's closed-form rows of ``dataset`` whose records hold a validation score, best first."""
    found = [Reference(row.label, float(row.records[0]["val"]["rmse"]), float(row.records[0]["rmse"]), row.fitted_by)
             for row in ledger_rows(records, dataset, channel) if not row.learned and row.records[0].get("val")]
    return sorted(found, key=lambda reference: reference.val_rmse)


#: The settings that decide a run's FLOPs per epoch (its seed, folder and optimiser do not).
FLOP_FIELDS = ("model", "dataset", "channel", "steps", "scaling", "gap_fill", "model_options", "batch_size",
               "limit_train_batches", "data_root")


def counted_epoch(record: dict[str, Any], cache: dict[str, EpochFlops | None]) -> EpochFlops | None:
    """FLOPs of one epoch of the record's run; None where they cannot be counted here (the dataset is
    not on this machine, or the settings no longer resolve)."""
    settings = record.get("settings") or {}
    key = json.dumps({name: settings.get(name) for name in FLOP_FIELDS}, sort_keys=True, default=str)
    if key not in cache:
        try:
            cache[key] = epoch_flops(settings)
        except StvfmError:
            cache[key] = None
    return cache[key]


def compute_rows(records: list[dict[str, Any]], dataset: str, channel: int | str,
                 count: bool = True) -> list[ComputeRow]:
    """The ledger report's rows of ``dataset`` that trained and validated, best at the largest budget
    first; ``count``: also count each run's FLOPs (reads the dataset)."""
    rows, cache = [], {}
    for row in ledger_rows(records, dataset, channel):
        runs = [run_compute(record, counted_epoch(record, cache) if count else None)
                for record in row.records] if row.learned else []
        runs = [run for run in runs if run.validations]
        if runs:
            rows.append(ComputeRow(row.label, runs))

    def order(row: ComputeRow) -> tuple:
        return tuple((row.at(budget) or (math.inf,))[0] for budget, _ in reversed(BUDGETS))

    return sorted(rows, key=order)


def _cell(value: tuple[float, bool, float | None, int] | None, seeds: int, best: bool) -> str:
    if value is None:
        return "-"
    mean, capped, test, counted = value
    text = f"**{mean:.3f}**" if best else f"{mean:.3f}"
    text = ("≤ " if capped else "") + text
    text += f" (test {test:.3f})" if test is not None else ""
    return text + (f" [{counted} of {seeds} seeds]" if counted < seeds else "")


def _best_rows(rows: list[ComputeRow], budgets: tuple, reading) -> dict[float, int | None]:
    """Index of the row with the lowest mean validation RMSE at each budget, as ``reading`` reads it."""
    best = {}
    for budget, _ in budgets:
        measured = [(value[0], index) for index, row in enumerate(rows) if (value := reading(row, budget))]
        best[budget] = min(measured)[1] if measured else None
    return best


def _flop_lines(rows: list[ComputeRow]) -> list[str]:
    """The same curves read at budgets of counted work, for readers with another machine than ours."""
    counted = [row for row in rows if any(run.epoch is not None for run in row.runs)]
    missing = [row.label for row in rows if row not in counted]
    if not counted:
        return ["", "FLOPs: not counted here (the datasets of these records are not on this machine)."]
    best = _best_rows(counted, FLOP_BUDGETS, ComputeRow.at_flops)
    lines = ["", ("Against work (host-independent): best validation RMSE within each budget of counted FLOPs, read "
                  "as the table above. Divide by your machine's rate to get time: the GFLOP/s per core column is "
                  "what these runs achieved here."), "",
             "| model | " + " | ".join(f"{label}" for _, label in FLOP_BUDGETS)
             + " | GFLOP per training window | PFLOP spent per seed |", "|---|" + "---|" * (len(FLOP_BUDGETS) + 2)]
    for index, row in enumerate(counted):
        cells = [_cell(row.at_flops(budget), len(row.runs), best[budget] == index) for budget, _ in FLOP_BUDGETS]
        runs = sorted(row.runs, key=lambda run: run.record["seed"])
        epoch = next(run.epoch for run in runs if run.epoch is not None)
        spent = ", ".join(f"{run.flops_spent / 1e15:.3g}" if run.flops_spent else "-" for run in runs)
        lines.append(f"| {row.label} | {' | '.join(cells)} | {epoch.window.train / 1e9:.3g} | {spent} |")
    lines.append("")
    lines += [f"- Best within {label}: " + (counted[best[budget]].label if best[budget] is not None
                                            else "no row had validated yet") + "." for budget, label in FLOP_BUDGETS]
    if missing:
        lines.append(f"- Not counted (dataset not on this machine): {', '.join(missing)}.")
    return lines


def _hours(core_seconds: float) -> str:
    return f"{core_seconds / 3600:.2f}"


def _reference_lines(fixed: list[Reference]) -> list[str]:
    if not fixed:
        return []
    return ["", "Closed-form references (no training: the dashed lines of the figure):", "",
            "| reference | validation RMSE | test RMSE | fitted by |", "|---|---|---|---|",
            *(f"| {ref.label} | {ref.val_rmse:.3f} | {ref.test_rmse:.3f} | {ref.fitted_by} |" for ref in fixed)]


def render(rows: list[ComputeRow], dataset: str, channel: int | str, sources: list[str], out: Path,
           span: str, fixed: list[Reference] = ()) -> str:
    command = (f"`stvfm ledger compute --dataset {dataset} --channel {channel_flag(channel)} "
               f"{' '.join(f'--ledger {source}' for source in sources)} --out {out}`")
    figure = out.name + ".png"
    lines = [f"# {dataset}, channel {channel} ({span}): validation RMSE against the compute spent", "",
             (f"Rebuilt from the records in {', '.join(f'`{s}`' for s in sources)} by {command}. "
             "Compute is core-time: the wall seconds of training and validation up to each validation, times the "
             "threads the run had (a run sharing its cores counts its waits as compute). A core-second of an AVX512 "
             "host does more work than one of an AVX2 host: each row names its hosts' vector units, and the figure "
             "marks each validation by them. Work is counted FLOPs, which no host changes: each run's FLOPs per "
             "window (matrix products, attention and convolutions, forward and backward, on the meta device) "
             "times the training and validation windows of its epochs, from its settings."), ""]
    if not rows:
        return "\n".join(lines + [(f"No learned records of {dataset} channel {channel} with a validation curve in "
                                  "these ledgers yet: nothing to place against compute."), *_reference_lines(fixed), ""])
    best = _best_rows(rows, BUDGETS, ComputeRow.at)
    lines += [f"![best validation RMSE so far against core-hours]({figure})", "",
              ("Best validation RMSE (original units) reached within each budget of one core, mean over the seeds "
              "validated by then; `≤`: a seed was stopped by its time cap before the budget, so more compute "
              "could only lower it; (test ...): every seed had finished (early stop or the recipe's last epoch) "
              "within the budget, and this is the mean test RMSE of its selected checkpoint. Bold: the best row "
              "at that budget (a `≤` row might go lower with the compute it did not get)."), "",
              "| model | " + " | ".join(f"{label} of one core" for _, label in BUDGETS)
              + " | core-hours spent per seed | TFLOP per epoch | GFLOP/s per core | hosts (vector units) | seeds "
              "| stopped by | epoch times |",
              "|---|" + "---|" * (len(BUDGETS) + 7)]
    unknown_threads = False
    for index, row in enumerate(rows):
        cells = [_cell(row.at(budget), len(row.runs), best[budget] == index) for budget, _ in BUDGETS]
        runs = sorted(row.runs, key=lambda run: run.record["seed"])
        spent = ", ".join(_hours(run.spent) + ("" if run.threads_recorded else "*") for run in runs)
        unknown_threads |= not all(run.threads_recorded for run in runs)
        hosts = ", ".join(sorted(set().union(*(run.vector_units for run in runs))))
        stops = ", ".join(sorted({run.record["stop_reason"] for run in runs}))
        timing = ", ".join(sorted({run.timing for run in runs}))
        epoch = next((run.epoch for run in runs if run.epoch is not None), None)
        per_epoch = f"{epoch.total / 1e12:.3g}" if epoch else "-"
        rates = ", ".join(f"{run.flop_rate / 1e9:.1f}" if run.flop_rate else "-" for run in runs)
        lines.append(f"| {row.label} | {' | '.join(cells)} | {spent} | {per_epoch} | {rates} | {hosts} | "
                     f"{', '.join(str(run.record['seed']) for run in runs)} | {stops} | {timing} |")
    lines += [""]
    for budget, label in BUDGETS:
        lines.append(f"- Best after {label} of one core: "
                     + (rows[best[budget]].label if best[budget] is not None else "no row had validated yet") + ".")
    lines += _flop_lines(rows)
    lines += _reference_lines(fixed)
    used = sorted({run.timing for row in rows for run in row.runs}, key=list(TIMINGS).index)
    lines += ["", "Epoch times: " + "; ".join(f"`{name}`: {TIMINGS[name]}" for name in used) + "."]
    if unknown_threads:
        lines.append("`*`: the record holds no thread count; the machine's cores were counted, an upper bound.")
    return "\n".join(lines) + "\n"


def _curves(ax, rows: list[ComputeRow], position, colours: list[str]) -> tuple[float, float]:
    """Step-wise best validation RMSE so far of each row's shown run, at ``position(validation)`` (None:
    not placed), each validation marked by its host's vector units; the lowest and first values drawn."""
    styles = ["-", "--", ":", "-."]
    lowest, highest = math.inf, 0.0
    for index, row in enumerate(rows):
        validations = [v for v in row.shown.validations if position(v) is not None]
        if not validations:
            continue
        where = [position(v) for v in validations]
        best_so_far = [min(v.val_rmse for v in validations[: i + 1]) for i in range(len(validations))]
        style = {"color": colours[index], "linestyle": styles[index // 10 % len(styles)]}
        ax.step(where, best_so_far, where="post", label=f"{row.label}, seed {row.shown.record['seed']}", **style)
        for units in {v.vector_units for v in validations}:
            points = [(x, b) for x, b, v in zip(where, best_so_far, validations, strict=True) if v.vector_units == units]
            ax.scatter(*zip(*points, strict=True), marker=MARKERS.get(units, "D"), s=18, color=colours[index], zorder=3)
        lowest, highest = min(lowest, *best_so_far), max(highest, best_so_far[0])
    return lowest, highest


def plot(rows: list[ComputeRow], path: Path, title: str, fixed: list[Reference] = ()) -> Path:
    """Best validation RMSE so far against core-hours (left) and counted PFLOP (right), log scales, one
    line per row; closed-form references as dashed levels."""
    fig = Figure(figsize=(15, 6), layout="constrained")
    by_time, by_work = fig.subplots(1, 2, sharey=True)
    colours = [f"C{index % 10}" for index in range(len(rows))]
    lowest, highest = _curves(by_time, rows, lambda v: v.core_seconds / 3600, colours)
    _curves(by_work, rows, lambda v: v.flops / 1e15 if v.flops is not None else None, colours)
    top = min(highest, lowest * 3) * 1.02
    for reference in fixed:
        if rows and reference.val_rmse > top:
            continue  # above the plotted range: the table lists it
        for ax in (by_time, by_work):
            ax.axhline(reference.val_rmse, color="black", linewidth=0.9, linestyle="--")
        by_time.annotate(f"{reference.label} (closed form)", (0.01, reference.val_rmse),
                         xycoords=("axes fraction", "data"), fontsize=8, ha="left", va="bottom")
        lowest = min(lowest, reference.val_rmse)
    for ax, budgets, scale in ((by_time, BUDGETS, 3600), (by_work, FLOP_BUDGETS, 1e15)):
        for budget, label in budgets:
            ax.axvline(budget / scale, color="grey", linewidth=0.8, linestyle=":")
            ax.annotate(label, (budget / scale, 1), xycoords=("data", "axes fraction"), fontsize=8,
                        ha="left", va="top", color="grey")
        ax.set_xscale("log")
        ax.grid(alpha=0.3, which="both")
    by_time.set_xlabel("core-hours spent (wall hours of training and validation x threads)")
    by_work.set_xlabel("PFLOP of work (counted per window from each run's settings; no host changes it)")
    by_time.set_ylabel("best validation RMSE so far (original units)")
    fig.suptitle(title, fontsize=10)
    if rows:
        by_time.set_ylim(lowest * 0.95, top)
        fig.legend(*by_time.get_legend_handles_labels(), fontsize=7, loc="outside right upper",
                   title="row (the line: its lowest seed)", title_fontsize=8)
        units = sorted({v.vector_units for row in rows for v in row.shown.validations})
        fig.legend([Line2D([], [], marker=MARKERS.get(unit, "D"), color="black", linestyle="") for unit in units],
                   units, fontsize=7, loc="outside right lower", title="host vector units", title_fontsize=8)
    else:
        by_time.text(0.5, 0.5, "no learned records yet", transform=by_time.transAxes, ha="center")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path


def compute(ledger: list[str | Path], dataset: str, channel: int | str, out: str | Path) -> tuple[str, list[Path]]:
    """``OUT.md`` (the table) and ``OUT.png`` (the figure) of ``dataset``'s accuracy against compute, from
    ledger records; zero or few records give a report that says so."""
    out = Path(out)
    records = read_records(ledger)
    rows, fixed = compute_rows(records, dataset, channel), references(records, dataset, channel)
    periods = sorted({record_period(row.runs[0].record) for row in rows}, key=str) or [protocol_period(dataset)]
    span = period_text(periods[0]) if len(periods) == 1 else "several periods, named in the rows"
    text = render(rows, dataset, channel, [str(source) for source in ledger], out, span, fixed)
    figure = out.with_name(out.name + ".png")
    plot(rows, figure, f"{dataset}, channel {channel} ({span}): best validation RMSE so far against compute", fixed)
    report = out.with_name(out.name + ".md")
    write_text_atomic(report, text)
    return text, [report, figure]
