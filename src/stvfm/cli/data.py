"""``stvfm data``: list, describe and fetch datasets."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Datasets: what is registered, what is found locally, and their protocol windows.",
                  no_args_is_help=True)
# Piped output (logs, CI) gets a wide console: results tables would otherwise be cut to 80 columns.
console = Console() if sys.stdout.isatty() else Console(width=160)

RootOption = Annotated[Optional[str], typer.Option("--data-root", envvar="STVFM_DATA_ROOT",
                                                   help="Folder holding the dataset folders.")]


@app.command("list")
def list_command(data_root: RootOption = None) -> None:
    """Table of registered datasets and whether their files are found locally."""
    from stvfm.data.paths import is_available, resolve_data_root
    from stvfm.data.registry import list_datasets

    root = resolve_data_root(data_root)
    table = Table(title=f"datasets (data root: {root})")
    for column in ("name", "domain", "grid", "interval", "steps", "channels", "found"):
        table.add_column(column)
    for spec in list_datasets():
        found = is_available(spec, root)
        table.add_row(spec.name, spec.domain, f"{spec.grid[0]}x{spec.grid[1]}", f"{spec.interval_minutes} min",
                      str(spec.default_steps or "all"), ", ".join(spec.channel_names),
                      "[green]yes[/]" if found else "[dim]no[/]")
    console.print(table)


@app.command("info")
def info_command(
    name: Annotated[str, typer.Argument(help="A registered dataset name or a path to a generic .npz/.nc/.zarr file.")],
    channel: Annotated[Optional[int], typer.Option(help="Channel index; omit for all channels.")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Use only the first N steps (default: the dataset's period).")] = None,
    data_root: RootOption = None,
) -> None:
    """Shape, time range, windows per split and value range of one dataset."""
    from stvfm.data.prepared import prepare_data
    from stvfm.data.windows import ProtocolConfig

    data = prepare_data(name, ProtocolConfig(channel=channel, steps=steps), root=data_root)
    table = Table(title=name, show_header=False)
    for key, value in data.describe().items():
        table.add_row(str(key), str(value))
    console.print(table)


@app.command("fetch")
def fetch_command(
    name: Annotated[str, typer.Argument(help="A registered dataset name.")],
    url: Annotated[Optional[str], typer.Option(help="Base URL of a mirror holding the dataset's files (default: its public source).")] = None,
    data_root: RootOption = None,
) -> None:
    """Download a dataset from its public source or a mirror, check sha256, write atomically."""
    from stvfm.data.fetch import fetch_dataset
    from stvfm.data.paths import resolve_data_root

    written = fetch_dataset(name, resolve_data_root(data_root), urls=url)
    for path in written:
        console.print(f"[green]ok[/] {path}")
