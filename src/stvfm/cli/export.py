"""``stvfm export``: a finished run as a small portable folder (and ONNX graph)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from stvfm.cli.options import RootOption, console


def export_command(
    run: Annotated[Path, typer.Argument(help="A finished run folder (of `stvfm fit` or `stvfm evaluate`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The export folder to write.")],
    onnx: Annotated[bool, typer.Option("--onnx", help="Also write model.onnx, checked against PyTorch on the test split.")] = False,
    quantize: Annotated[bool, typer.Option("--quantize", help="With --onnx: also a dynamic int8 model.int8.onnx, its test-error change measured and printed.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing export in --out.")] = False,
    data_root: RootOption = None,
) -> None:
    """Export a run: trained weights (safetensors), settings, scaler, calendar and model card; a frozen
    backbone is named by provider and sha256, not copied. Load it with `stvfm.load(DIR)`, `stvfm predict
    --checkpoint DIR`, `stvfm test --checkpoint DIR` or `stvfm serve DIR`."""
    from stvfm.export.writer import export_run

    summary = export_run(run, out, onnx=onnx, quantize=quantize, overwrite=overwrite, data_root=data_root)
    card = summary["card"]
    console.print(f"[green]ok[/] {card['model']} on {card['data']['dataset']} exported to {out}: "
                  + ", ".join(f"{name} {size / 1024:,.0f} KiB" for name, size in summary["files"].items()))
    frozen = card["weights"]["backbone"]
    if frozen:
        console.print(f"backbone {frozen['label']} not copied: provider {frozen['provider']}, "
                      f"sha256 {frozen['sha256'][:16]}...")
    record = summary["onnx"]
    if record and record.get("file"):
        console.print(f"ONNX: max abs difference from PyTorch {record['max_abs_diff_scaled']:.2e} (scaled units) over "
                      f"{record['windows']} test windows")
        if record.get("int8"):
            int8 = record["int8"]
            console.print(f"int8: test MAE {int8['mae']:.4f} vs {int8['mae_fp32']:.4f} fp32 "
                          f"({int8['mae_change_percent']:+.2f}%), RMSE {int8['rmse']:.4f} vs {int8['rmse_fp32']:.4f} "
                          f"({int8['rmse_change_percent']:+.2f}%); measure its speed with `stvfm export-bench {out}`")
    elif record:
        console.print(f"[yellow]no ONNX graph:[/] {record['reason']}")


def export_bench_command(
    export: Annotated[Path, typer.Argument(help="An export folder written with --onnx (and --quantize for int8).")],
    batch_sizes: Annotated[str, typer.Option(help="Comma-separated windows per call.")] = "1,64",
    repeats: Annotated[int, typer.Option(help="Timed calls per engine and batch size (interleaved; medians reported).")] = 15,
    threads: Annotated[int | None, typer.Option(help="Threads for both engines (default: PyTorch's).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write every figure to this JSON file.")] = None,
) -> None:
    """Time ONNX Runtime against PyTorch on an export's forecasts, in one process on this machine: ms per window
    and the speed-up; the int8 graph's measured test-error change beside its speed-up."""
    from stvfm.atomic import write_json_atomic
    from stvfm.export.graph import benchmark

    sizes = tuple(int(size) for size in batch_sizes.split(",") if size.strip())
    result = benchmark(export, batch_sizes=sizes, repeats=repeats, threads=threads)
    engines = list(result["rows"][0]["ms_per_window"])
    table = Table(title=f"{result['model']}: ms per window, median of {result['repeats']} interleaved calls, "
                        f"{result['threads']} thread(s)")
    table.add_column("windows per call", justify="right")
    for engine in engines:
        table.add_column(engine, justify="right")
    for engine in engines[1:]:
        table.add_column(f"{engine} speed-up", justify="right")
    for row in result["rows"]:
        table.add_row(str(row["batch_size"]), *(f"{row['ms_per_window'][engine]:.3f}" for engine in engines),
                      *(f"{row['speedup_vs_pytorch'][engine]:.2f}x" for engine in engines[1:]))
    console.print(table)
    if result["max_abs_diff_scaled"] is not None:
        console.print(f"onnxruntime vs pytorch on the test split: max abs difference "
                      f"{result['max_abs_diff_scaled']:.2e} (scaled units)")
    int8 = result["int8"]
    if int8:
        console.print(f"int8 test error vs fp32 graph: MAE {int8['mae']:.4f} vs {int8['mae_fp32']:.4f} "
                      f"({int8['mae_change_percent']:+.2f}%), RMSE {int8['rmse']:.4f} vs {int8['rmse_fp32']:.4f} "
                      f"({int8['rmse_change_percent']:+.2f}%)")
    if out:
        write_json_atomic(out, result)


def register(app: typer.Typer) -> None:
    app.command("export")(export_command)
    app.command("export-bench")(export_bench_command)
