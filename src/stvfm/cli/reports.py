"""``stvfm compare / plot / report``: tables, figures and the HTML report of finished runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from stvfm.cli.options import console

def compare_command(
    runs: Annotated[list[Path], typer.Argument(help="Run folders (or metrics.json files) and ledger folders (or records) to put side by side.")],
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


def report_command(
    runs: Annotated[list[Path], typer.Argument(help="Run folders tested on one split (ST-VFM is shown beside the best other run).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")] = Path("report.html"),
) -> None:
    """One self-contained HTML page: comparison table, per-step errors, forecast and error maps."""
    from stvfm.reports.html import report

    console.print(f"written: {report(runs, out)}")


def register(app: typer.Typer) -> None:
    app.command("compare")(compare_command)
    app.command("plot")(plot_command)
    app.command("report")(report_command)
