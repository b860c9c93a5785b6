"""``stvfm compare / plot / score / report``: tables, figures, re-scored metrics and the HTML report of finished runs."""

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
    from stvfm.training.folders import check_output

    if markdown:
        check_output(markdown, inputs=tuple(runs))
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
    compare: Annotated[Optional[list[Path]], typer.Option(help="Another run folder for the per-horizon and per-window error plots, repeatable.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for the PNG files (default: RUN/plots).")] = None,
) -> None:
    """Forecast maps, error map, loss curves and (with --compare) per-horizon errors as PNG files."""
    from stvfm.reports.plots import plot_horizon_curves, plot_run, plot_window_errors, plots_dir

    written = plot_run(run, out)
    if compare:
        written.append(plot_horizon_curves([run, *compare], plots_dir(run, out) / "horizon_curves.png"))
        written.append(plot_window_errors([run, *compare], plots_dir(run, out) / "window_errors.png"))
    for path in written:
        console.print(f"written: {path}")


def _card_value(value) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    return "-" if value is None else str(value)


def score_command(
    run: Annotated[Path, typer.Argument(help="Run folder with metrics.json and predictions.npz (any stvfm version).")],
    mask_below: Annotated[Optional[float], typer.Option(help="Also leave out targets whose true value is below this (original units); e.g. 1 leaves out zeros of counts.")] = None,
    steps: Annotated[Optional[str], typer.Option(help="Forecast steps to pool, 1-based and comma-separated, e.g. 1,3,6 (default: all).")] = None,
) -> None:
    """Score a run's saved test forecasts again under another masking rule or steps, without retraining."""
    from rich.columns import Columns

    from stvfm.errors import ConfigError
    from stvfm.training.scoring import score

    try:
        chosen = [int(step) for step in steps.split(",")] if steps else None
    except ValueError:
        raise ConfigError(f"--steps expects comma-separated step numbers such as 1,3,6, got {steps!r}") from None
    result = score(run, mask_below=mask_below, steps=chosen)
    card, recorded = result["protocol_card"], result["recorded"]["protocol_card"]
    figures = Table(title=f"{result['model']} on {result['dataset']} (channel {result['channel']}): test")
    figures.add_column("")
    figures.add_column("pooled", justify="right")
    for step in card["steps"]:
        figures.add_column(f"t+{step}", justify="right")
    for name in ("mae", "rmse"):
        figures.add_row(name.upper(), f"{result[name]:.4f}",
                        *("-" if v is None else f"{v:.3f}" for v in result["per_horizon"][name]))
    figures.add_row("scored", str(result["n_points"]), *map(str, result["per_horizon"]["n_points"]))
    figures.caption = f"as recorded: MAE {result['recorded']['mae']:.4f}, RMSE {result['recorded']['rmse']:.4f}"
    protocol = Table(title="protocol card")
    for column in ("", "this score", "as recorded"):
        protocol.add_column(column)
    for key in dict.fromkeys([*card, *recorded]):
        protocol.add_row(key, _card_value(card.get(key)), _card_value(recorded.get(key)))
    console.print(Columns([figures, protocol]))


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
    app.command("score")(score_command)
    app.command("report")(report_command)
