"""``stvfm export``: a finished run as a small portable folder (and ONNX graph)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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


def register(app: typer.Typer) -> None:
    app.command("export")(export_command)
