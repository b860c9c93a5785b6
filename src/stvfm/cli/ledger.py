"""``stvfm ledger add / report / compute``: the committed results ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from stvfm.cli.options import ChannelOption, channel_index, console

app = typer.Typer(help="The results ledger: small committed records of finished runs, and tables rebuilt from them.",
                  no_args_is_help=True)

LedgerOption = Annotated[Optional[Path], typer.Option("--ledger", envvar="STVFM_LEDGER", help="Ledger folder (default $STVFM_LEDGER, else docs/results/ledger).")]


@app.command("add")
def add_command(
    runs: Annotated[list[Path], typer.Argument(help="Finished run folders (with metrics.json), or record files of another ledger.")],
    ledger: LedgerOption = None,
) -> None:
    """Write (or replace) the ledger record of each finished run, or import records gathered elsewhere."""
    from stvfm.ledger import add

    for path in add(runs, ledger or Path("docs/results/ledger")):
        console.print(f"written: {path}")


@app.command("report")
def report_command(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset whose records to tabulate.")],
    channel: ChannelOption = None,
    ledger: Annotated[Optional[list[Path]], typer.Option("--ledger", help="Ledger folders or record files, repeatable (default $STVFM_LEDGER, else docs/results/ledger).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Also write the Markdown table to this file.")] = None,
    versus: Annotated[str, typer.Option("--versus", help="Model whose verdicts against every other row end the report.")] = "stvfm",
) -> None:
    """One comparison table rebuilt from ledger records alone (no run folders needed), ending with one model's
    verdicts against every other row."""
    import os

    from stvfm.experiments.ledger_report import report

    sources = ledger or [Path(os.environ.get("STVFM_LEDGER") or "docs/results/ledger")]
    console.print(report(sources, dataset, channel_index(channel), out, versus), markup=False, highlight=False)
    if out:
        console.print(f"written: {out}")


@app.command("compute")
def compute_command(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset whose records to place against compute.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Path stem: writes OUT.md (table) and OUT.png (figure).")],
    channel: ChannelOption = None,
    ledger: Annotated[Optional[list[Path]], typer.Option("--ledger", help="Ledger folders or record files, repeatable (default $STVFM_LEDGER, else docs/results/ledger).")] = None,
) -> None:
    """Validation RMSE against the core-hours each model had spent, from ledger records alone: which is best
    after 10 minutes, 1 hour or 10 hours of one core."""
    import os

    from stvfm.experiments.compute_report import compute

    sources = ledger or [Path(os.environ.get("STVFM_LEDGER") or "docs/results/ledger")]
    text, written = compute(sources, dataset, channel_index(channel), out)
    console.print(text, markup=False, highlight=False)
    for path in written:
        console.print(f"written: {path}")


@app.command("best")
def best_command(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset whose records to tabulate.")],
    channel: ChannelOption = None,
    ledger: Annotated[list[Path] | None, typer.Option("--ledger", help="Ledger folders or record files, repeatable (default $STVFM_LEDGER, else docs/results/ledger).")] = None,
) -> None:
    """Each model's best ledger row as a terminal table: test RMSE / MAE, seeds, epochs, minutes, why it stopped."""
    import os

    from rich.table import Table

    from stvfm.experiments.ledger_report import best

    sources = ledger or [Path(os.environ.get("STVFM_LEDGER") or "docs/results/ledger")]
    index = channel_index(channel)
    table = Table(title=f"{dataset}, channel {index}: each model's best run in the results ledger "
                        "(test, original units; mean ± std over seeds)", title_justify="left")
    for column, justify in (("model", "left"), ("RMSE", "right"), ("MAE", "right"), ("seeds", "right"),
                            ("epochs per seed", "right"), ("minutes per seed", "right"), ("stopped by", "left")):
        table.add_column(column, justify=justify)
    for row in best(sources, dataset, index):
        several = row.learned and len(row.records) > 1
        rmse, mae = (row.stat(metric) for metric in ("rmse", "mae"))
        epochs, minutes = row.epochs_and_minutes
        table.add_row(row.label, f"{rmse[0]:.3f}" + (f" ± {rmse[1]:.3f}" if several else ""),
                      f"{mae[0]:.3f}" + (f" ± {mae[1]:.3f}" if several else ""),
                      str(len(row.records)) if row.learned else "-", epochs, minutes, row.stopped_by)
    console.print(table)
