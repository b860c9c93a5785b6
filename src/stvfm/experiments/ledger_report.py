"""Comparison tables rebuilt from ledger records alone: no run folders, no weights.

One row per configuration (model, variant, every setting but the seed; the time cap only where it
stopped a run), mean ± std over the seeds recorded, the paper's figure beside it, the budget each row
had (epochs, minutes, threads, why it stopped), the validation trend of capped runs, whether the gap to the
best row exceeds the seed spread, the error at each forecast step, and one model's verdict against every other row (ST-VFM's by default), so
the verdicts a results page states are rebuilt from the records, not written by hand.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stvfm.atomic import write_text_atomic
from stvfm.data.series import channel_flag
from stvfm.errors import DataError
from stvfm.experiments.paper import paper_figure, paper_scale, printed_figure
from stvfm.ledger import identity, period_text, read_records, record_period, result_settings
from stvfm.models.registry import get_model_entry
from stvfm.training.significance import SIGNIFICANCE, paired_window_test, scored_windows


@dataclass
class LedgerRow:
    label: str
    records: list[dict[str, Any]]

    def stat(self, metric: str) -> tuple[float, float]:
        values = [record[metric] for record in self.records]
        if not self.learned:
            return values[0], 0.0  # closed form: no seed to vary
        spread = statistics.stdev(values) if len(values) > 1 else math.nan
        return statistics.fmean(values), spread

    @property
    def model(self) -> str:
        return self.records[0]["model"]

    @property
    def period(self) -> tuple[str, str] | None:
        """The span of the series its records read (one per row: rows are grouped by it)."""
        return record_period(self.records[0])

    @property
    def learned(self) -> bool:
        return self.records[0]["stop_reason"] != "not trained"

    @property
    def seeds(self) -> list[int]:
        return sorted(record["seed"] for record in self.records)

    def window_losses(self) -> tuple[dict[str, Any], list[int]] | None:
        """The row's per-window test errors (``per_window``, each window's MSE averaged over the seeds that
        kept them) and those seeds; None where no record of the row kept them. Seeds scored on other
        windows than the first such seed's are left out."""
        kept = [record for record in self.records if isinstance(record.get("per_window"), dict)]
        if not kept:
            return None
        first = scored_windows(kept[0]["per_window"])
        same = [record for record in kept if scored_windows(record["per_window"]) == first]
        losses = [None if None in values else statistics.fmean(values)
                  for values in zip(*(record["per_window"]["mse"] for record in same), strict=True)]
        return kept[0]["per_window"] | {"mse": losses}, sorted(record["seed"] for record in same)

    @property
    def budget(self) -> str:
        """Epochs run, training minutes, threads (and the machine's load and vector units, where recorded) of
        each seed, and why each stopped."""
        if not self.learned:
            return self.fitted_by
        parts = []
        for record in sorted(self.records, key=lambda r: r["seed"]):
            minutes = _training_seconds(record) / 60
            sittings = len(record.get("sittings") or [])
            over = f" over {sittings} sittings" if sittings > 1 else ""
            host = record.get("machine") or {}
            notes = [f"load {host['load_15min']:g}"] if host.get("load_15min") is not None else []
            notes += [host["cpu_capability"]] if host.get("cpu_capability") else []  # AVX2 hosts run ~2x slower
            shared = f" ({', '.join(notes)})" if notes else ""
            parts.append(f"{record['epochs']} ep, {minutes:.0f} min{over} x {record.get('threads') or '?'} thr{shared}, "
                         f"{record['stop_reason']}")
        return "; ".join(parts)

    @property
    def epochs_and_minutes(self) -> tuple[str, str]:
        """Epochs and training minutes of each seed, lowest seed first ("-" for a closed form)."""
        if not self.learned:
            return "-", "-"
        ordered = sorted(self.records, key=lambda r: r["seed"])
        return (", ".join(str(record["epochs"]) for record in ordered),
                ", ".join(f"{_training_seconds(record) / 60:.0f}" for record in ordered))

    @property
    def stopped_by(self) -> str:
        return ", ".join(sorted({record["stop_reason"] for record in self.records})) if self.learned else self.fitted_by

    @property
    def fitted_by(self) -> str:
        """How a row that is not learned was fitted (records before ``fitted_by`` are closed forms)."""
        return self.records[0].get("fitted_by") or "closed form"

    @property
    def trend(self) -> str:
        """Validation RMSE of the last three epochs of the lowest seed: still falling means not converged."""
        first = min(self.records, key=lambda record: record["seed"])
        curve = [point["val/rmse"] for point in first.get("val_curve", []) if "val/rmse" in point]
        return " > ".join(f"{value:.2f}" for value in curve[-3:]) if curve else "-"

    @property
    def weights(self) -> str:
        labels = {(record.get("weights") or {}).get("label") for record in self.records} - {None}
        return ", ".join(sorted(labels)) or "-"


def _training_seconds(record: dict[str, Any]) -> float:
    """Training seconds summed over every sitting of a resumed run (``train_seconds`` is the last one's)."""
    return float(record.get("total_train_seconds") or record.get("train_seconds") or 0.0)


def _label(record: dict[str, Any]) -> str:
    """Model, variant, and the run folder it was fine-tuned from (a pre-training's folder names its datasets)."""
    variant = record.get("variant")
    label = record["model"] + (f" ({variant})" if variant and variant != "full" else "")
    start = (record.get("settings") or {}).get("init_from")
    return label + (f" (fine-tuned from {Path(start).parent.parent.name or start})" if start else "")


def _row_settings(record: dict[str, Any]) -> dict[str, Any]:
    """The settings that make a record's row: all but the seed, and the time cap only where it stopped the
    run (a run that ended by early stopping or its last epoch would have ended the same under any cap, so
    seeds resumed under a 120- and a 170-minute sitting are one result)."""
    untimed = ("seed",) if record["stop_reason"] == "time cap" else ("seed", "max_minutes")
    return {key: value for key, value in record["settings"].items() if key not in untimed}


def _label_settings(record: dict[str, Any]) -> dict[str, Any]:
    """A row's result settings with each model option as a setting of its own, so a label names only the
    options that differ (``seasonality none``), not the whole dictionary."""
    settings = result_settings(_row_settings(record))
    options = settings.pop("model_options", None) or {}
    return {**settings, **options}


def _differing(rows: list[LedgerRow]) -> list[str]:
    """Settings whose values differ between rows of one model: what tells them apart in a label."""
    settings = [_label_settings(row.records[0]) for row in rows]
    keys = sorted(set().union(*settings) - {"seed", "out", "init_from"})  # the label names the start
    return [key for key in keys if len({json.dumps(s.get(key), sort_keys=True, default=str) for s in settings}) > 1]


def _budget_label(settings: dict[str, Any], keys: list[str]) -> str:
    names = {"max_minutes": "cap {:g} min", "max_epochs": "max {} ep", "batch_size": "batch {}"}

    def part(key: str) -> str:
        value = settings.get(key)
        if key == "max_minutes" and value is None:
            return "no time cap reached"
        if key in names:
            return names[key].format(value)
        return f"{key} {value if isinstance(value, str) else json.dumps(value, default=str)}"  # true, not True

    return ", ".join(part(key) for key in keys)


def ledger_rows(records: list[dict[str, Any]], dataset: str, channel: int | str = 0) -> list[LedgerRow]:
    """Records of ``dataset`` / ``channel`` grouped by period, configuration and time cap, best mean RMSE first.

    A row's seeds share one budget: a seed stopped at an 8-minute cap never averages with one trained
    for 30, so the same model stopped at two caps is two rows, each labelled with its cap, while seeds that
    ended by early stopping or their last epoch share a row whatever sitting cap they ran under; records
    of two spans of the series (BikeNYC's 183 and 60 days) are never one row either."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for record in records:
        if record["dataset"] != dataset or record["channel"] != channel or record.get("split", "test") != "test":
            continue
        key = (record_period(record), identity(_row_settings(record)))
        groups.setdefault(key, []).append(record)
    rows = []
    for group in groups.values():
        by_seed = {record["seed"]: record for record in sorted(group, key=lambda r: r["recorded_at"])}
        rows.append(LedgerRow(_label(group[0]), list(by_seed.values())))  # a re-recorded seed counts once
    for label in {row.label for row in rows}:  # one model at several budgets: say which is which
        same = [row for row in rows if row.label == label]
        if len(same) > 1:
            keys, periods = _differing(same), len({row.period for row in same}) > 1
            for row in same:
                parts = [_budget_label(_label_settings(row.records[0]), keys)] if keys else []
                row.label += f" [{', '.join(parts + ([period_text(row.period)] if periods else []))}]"
    return sorted(rows, key=lambda row: row.stat("rmse")[0])


def _spread_judged(row: LedgerRow, reference: LedgerRow, metric: str) -> tuple[float, str] | None:
    """Twice the wider seed spread of the two rows (the margin a gap must pass), and whose spread it was.
    ``None`` where neither row has several learned seeds, so no spread is known."""
    spread = {r.label: r.stat(metric)[1] for r in (row, reference) if r.learned and len(r.records) > 1}
    if not spread:
        return None
    whose = "the wider seed spread" if len(spread) == 2 else f"{next(iter(spread))}'s seed spread"
    return 2 * max(spread.values()), whose


def _verdict(row: LedgerRow, best: LedgerRow) -> str:
    """Whether the RMSE gap to the best row is more than twice the wider seed spread of the two. Only a
    learned row with several seeds has a spread; a closed-form row has no seeds, so its verdict rests on
    the best row's spread alone and never speaks of its own."""
    if row is best:
        return "best"
    if not row.learned and not best.learned:
        return "neither learned"
    judged = _spread_judged(row, best, "rmse")
    if judged is None:
        if not row.learned:
            return f"{row.fitted_by}; the best row has one seed: gap not judged"
        return "one seed: spread unknown"
    whose = "the seed spread" if row.learned else "the best row's seed spread"
    return f"beyond {whose}" if row.stat("rmse")[0] - best.stat("rmse")[0] > judged[0] else f"within {whose}"


def _against(reference: LedgerRow, row: LedgerRow, metric: str) -> str:
    """``reference`` ahead of, behind or level with ``row`` on ``metric`` (lower is better), with the gap and the
    margin it was judged against."""
    gap = row.stat(metric)[0] - reference.stat(metric)[0]
    judged = _spread_judged(row, reference, metric)
    if not row.learned and not reference.learned:
        return f"{gap:+.3f}: neither learned"
    if judged is None:
        return f"{gap:+.3f}: no seed spread known, not judged"
    margin, whose = judged
    verdict = "level" if abs(gap) <= margin else "ahead" if gap > 0 else "behind"
    return f"{gap:+.3f}: {verdict} ({'within' if verdict == 'level' else 'beyond'} {margin:.3f}, twice {whose})"


def _paired(reference: LedgerRow, row: LedgerRow) -> str:
    """``reference`` against ``row`` window by window on the test split: the Diebold-Mariano test of
    their per-window MSE (``stvfm.training.significance``), where both kept them for the same windows."""
    mine, theirs = reference.window_losses(), row.window_losses()
    if mine is None or theirs is None:
        return "per-window errors not recorded"
    try:
        test = paired_window_test(mine[0], theirs[0])
    except DataError as error:  # other windows, or too few both scored
        return str(error)
    partial = [f"{r.label} on seed{'s' if len(used) > 1 else ''} {', '.join(map(str, used))} only"
               for r, (_, used) in ((reference, mine), (row, theirs)) if r.learned and len(used) < len(r.records)]
    return test.summary() + "".join(f"; {p}" for p in partial)


def _per_step(row: LedgerRow) -> list[float] | None:
    """Test RMSE at each forecast step, mean over the row's seeds; ``None`` where a record lacks it."""
    curves = [(record.get("per_horizon") or {}).get("rmse") for record in row.records]
    if not all(curves) or len({len(curve) for curve in curves}) != 1:
        return None
    return [statistics.fmean(step) for step in zip(*curves, strict=True)]


def _per_step_lines(rows: list[LedgerRow]) -> list[str]:
    steps = {row.label: _per_step(row) for row in rows}
    horizon = max((len(curve) for curve in steps.values() if curve), default=0)
    if not horizon:
        return []
    lowest = [min(curve[step] for curve in steps.values() if curve and len(curve) == horizon) for step in range(horizon)]
    lines = ["", "Test RMSE at each forecast step (mean over the row's seeds; the lowest of each step in bold):", "",
             "| model | seeds | " + " | ".join(f"step {step + 1}" for step in range(horizon)) + " |",
             "|---|---|" + "---|" * horizon]
    for row in rows:
        curve = steps[row.label]
        if not curve or len(curve) != horizon:
            continue
        cells = [f"**{value:.2f}**" if value == lowest[step] else f"{value:.2f}" for step, value in enumerate(curve)]
        lines.append(f"| {row.label} | {len(row.records) if row.learned else '-'} | " + " | ".join(cells) + " |")
    return lines


def _versus_lines(rows: list[LedgerRow], versus: str) -> list[str]:
    references = [row for row in rows if row.model == versus]
    if not references:
        return ["", f"No {versus} record for this dataset and channel: no verdicts against it."]
    lines = []
    for reference in references:
        lines += ["", f"## {reference.label} against each row", "",
                  f"Gap = the row's error minus {reference.label}'s (positive: {reference.label} is ahead). A gap "
                  "counts when it exceeds twice the wider seed spread of the two rows (a closed-form or one-seed row "
                  "has none); where neither row has several seeds it is not judged. The last column compares the two "
                  "window by window on the test split: the row's mean per-window MSE minus "
                  f"{reference.label}'s (averaged over the seeds that kept per-window errors), and the two-sided "
                  "p-value of a Diebold-Mariano test (HAC variance over one day of lags); below "
                  f"{SIGNIFICANCE:g} the gap is beyond the test windows' own noise. It speaks of this test split, "
                  "not of other seeds or periods.", "",
                  "| row | RMSE gap: verdict | MAE gap: verdict | test windows, paired: MSE gap, verdict (p) |",
                  "|---|---|---|---|"]
        lines += [f"| {row.label} | {_against(reference, row, 'rmse')} | {_against(reference, row, 'mae')} | "
                  f"{_paired(reference, row)} |" for row in rows if row is not reference]
    return lines


def _format(stat: tuple[float, float], with_spread: bool) -> str:
    mean, spread = stat
    return f"{mean:.3f} ± {spread:.3f}" if with_spread else f"{mean:.3f}"


def _paper_text(row: LedgerRow, dataset: str) -> str:
    variant = row.records[0].get("variant")  # an ST-VFM ablation row stands beside the paper's Table 3
    table, name = ("ablation", variant) if variant not in (None, "full") else ("main", row.model)
    paper, printed = paper_figure(table, name, dataset), printed_figure(table, name, dataset)
    if printed and not paper:
        return f"misprinted ({printed[0]:g} / {printed[1]:g}: MAE > RMSE)"
    return f"{paper[0]:g} / {paper[1]:g}" if paper else "-"


def render(rows: list[LedgerRow], dataset: str, channel: int | str, sources: list[str], versus: str = "stvfm") -> str:
    if not rows:
        raise DataError(f"no ledger records for {dataset} channel {channel} in {', '.join(sources)}")
    best = rows[0]
    periods = sorted({row.period for row in rows}, key=str)
    span = period_text(periods[0]) if len(periods) == 1 else "several periods, named in the rows"
    lines = [f"# {dataset}, channel {channel} ({span}): test RMSE / MAE from the results ledger", "",
             f"Rebuilt from the records in {', '.join(f'`{s}`' for s in sources)} by "
             f"`stvfm ledger report --dataset {dataset} --channel {channel_flag(channel)}`. Original units; mean ± std over "
             "the seeds listed, which share one budget (a model stopped at two time caps is two rows); "
             "every model at its recipe (stvfm/recipes), selected on validation forecast MSE. "
             "A row stopped by the time cap did not converge: its validation trend says how far it was.", "",
             "| model | RMSE | MAE | paper RMSE / MAE | seeds | budget per seed | val RMSE, last epochs (lowest seed) | weights | vs best |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        several = row.learned and len(row.records) > 1
        lines.append(f"| {row.label} | {_format(row.stat('rmse'), several)} | {_format(row.stat('mae'), several)} | {_paper_text(row, dataset)} | "
                     f"{', '.join(map(str, row.seeds)) if row.learned else '-'} | {row.budget} | {row.trend} | {row.weights} | "
                     f"{_verdict(row, best)} |")
    scale = paper_scale(dataset, (best.records[0].get("scaling") or {}).get("maximum"))
    if scale != 1.0:
        lines += ["", f"On the paper's printed scale (our errors x {scale:g}, as it scales {dataset} after UniST):", "",
                  "| model | RMSE | MAE | paper RMSE / MAE |", "|---|---|---|---|"]
        for row in rows:
            lines.append(f"| {row.label} | {row.stat('rmse')[0] * scale:.3f} | {row.stat('mae')[0] * scale:.3f} | "
                         f"{_paper_text(row, dataset)} |")
    timed_out = [row.label for row in rows if any(r["stop_reason"] == "time cap" for r in row.records)]
    full = [row.label for row in rows if row.label not in timed_out and any(r["stop_reason"] == "epoch cap" for r in row.records)]
    lines += ["", f"Stopped by the time cap before early stopping (not converged): {', '.join(timed_out) or 'none'}.",
              f"Ran every epoch the recipe allows, validation still improving within its patience: {', '.join(full) or 'none'}."]
    lines += _per_step_lines(rows) + _versus_lines(rows, versus)
    return "\n".join(lines) + "\n"


def report(ledger: list[str | Path], dataset: str, channel: int | str = 0, out: str | Path | None = None,
           versus: str = "stvfm") -> str:
    """The comparison table of ``dataset`` from ledger records, with ``versus``'s verdicts against every row;
    written to ``out`` when given."""
    get_model_entry(versus)  # a misspelt model is an error, not a report that says it has no record
    records = read_records(ledger)
    text = render(ledger_rows(records, dataset, channel), dataset, channel, [str(path) for path in ledger], versus)
    if out is not None:
        write_text_atomic(out, text)
    return text


def best(ledger: list[str | Path], dataset: str, channel: int | str = 0) -> list[LedgerRow]:
    """Each model's best row (the configuration and time cap with the lowest mean test RMSE), best first:
    what longer runs give, beside a short run's table."""
    rows = ledger_rows(read_records(ledger), dataset, channel)
    if not rows:
        raise DataError(f"no ledger records for {dataset} channel {channel} in {', '.join(map(str, ledger))}")
    per_model: dict[str, LedgerRow] = {}
    for row in rows:
        per_model.setdefault(_label(row.records[0]), row)
    return list(per_model.values())
