"""``stvfm data``: list, describe and fetch datasets, and grid raw trip records."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from stvfm.cli.options import channel_index

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
    channel: Annotated[Optional[int], typer.Option(help="Channel index; omit (or -1) for all channels.")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Use only the first N steps (default: the dataset's period).")] = None,
    data_root: RootOption = None,
) -> None:
    """Shape, time range, windows per split and value range of one dataset."""
    from stvfm.data.prepared import prepare_data
    from stvfm.data.series import ALL_CHANNELS
    from stvfm.data.windows import ProtocolConfig

    chosen = ALL_CHANNELS if channel is None else channel_index(channel)  # here, none given is every channel
    data = prepare_data(name, ProtocolConfig(channel=chosen, steps=steps), root=data_root)
    described = data.describe()
    metadata = described.pop("metadata", None)
    table = Table(title=name, show_header=False)
    for key, value in described.items():
        table.add_row(str(key), str(value))
    console.print(table)
    if metadata is not None:
        _print_metadata(metadata)


def _print_metadata(metadata: dict) -> None:
    """How a file was made (``stvfm data grid``): one row per setting, sources and rejections as tables."""
    table = Table(title="how it was made", show_header=False)
    for key, value in metadata.items():
        if key not in ("sources", "rejected"):
            table.add_row(key, str(value))
    console.print(table)
    if "sources" in metadata:
        sources = Table(title="sources")
        for column in ("file", "layout", "rows", "sha256"):
            sources.add_column(column)
        for source in metadata["sources"]:
            sources.add_row(source["path"], source["layout"], f"{source['rows']:,}", source["sha256"])
        console.print(sources)
    if "rejected" in metadata:
        _print_rejections(metadata["rejected"], metadata.get("kept", {}))


def _print_rejections(rejected: dict, kept: dict) -> None:
    from stvfm.data.records import REASONS

    channels = list(kept) or sorted({channel for per in rejected.values() for channel in per})
    table = Table(title="events counted and rejected")
    table.add_column("reason")
    for channel in channels:
        table.add_column(channel, justify="right")
    table.add_column("meaning")
    table.add_row("[green]counted[/]", *(f"{kept.get(channel, 0):,}" for channel in channels), "in a cell and interval")
    for reason, per_channel in rejected.items():
        style = "" if any(per_channel.values()) else "[dim]"
        table.add_row(f"{style}{reason}", *(f"{style}{per_channel.get(channel, 0):,}" for channel in channels),
                      f"{style}{REASONS.get(reason, '')}")
    console.print(table)


@app.command("grid")
def grid_command(
    ctx: typer.Context,
    sources: Annotated[list[str], typer.Argument(help="Trip/event record files: CSV (.csv, .csv.gz) or Parquet, paths or globs (quote globs).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The generic .npz to write.")],
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone of the counts (local time), e.g. America/New_York.")],
    grid: Annotated[str | None, typer.Option(help="ROWSxCOLS cells over the box, e.g. 16x8.")] = None,
    cell_metres: Annotated[float | None, typer.Option(help="Square cells of this many metres (the box grows north/east to whole cells); instead of --grid.")] = None,
    bbox: Annotated[str | None, typer.Option(help="west,south,east,north in degrees (default: the records' extent, gross outliers excluded).")] = None,
    interval: Annotated[str, typer.Option(help="Slot length that divides a day: 15min, 30min, 1h, 1d.")] = "1h",
    start: Annotated[str | None, typer.Option(help="First slot, local time (default: midnight of the first pick-up's day).")] = None,
    end: Annotated[str | None, typer.Option(help="End of the period, exclusive, local time (default: midnight after the last pick-up's day).")] = None,
    zones: Annotated[Path | None, typer.Option(help="Zone table for zone-id layouts: CSV of id, lon, lat, or GeoJSON of zone polygons.")] = None,
    time_format: Annotated[str | None, typer.Option(help="strptime format of the time columns (default: the usual ones, month before day).")] = None,
    start_time: Annotated[str | None, typer.Option(help="Column of the start time (default: detected).")] = None,
    end_time: Annotated[str | None, typer.Option(help="Column of the end time.")] = None,
    start_lon: Annotated[str | None, typer.Option(help="Column of the start longitude.")] = None,
    start_lat: Annotated[str | None, typer.Option(help="Column of the start latitude.")] = None,
    end_lon: Annotated[str | None, typer.Option(help="Column of the end longitude.")] = None,
    end_lat: Annotated[str | None, typer.Option(help="Column of the end latitude.")] = None,
    start_zone: Annotated[str | None, typer.Option(help="Column of the start zone id.")] = None,
    end_zone: Annotated[str | None, typer.Option(help="Column of the end zone id.")] = None,
    strict: Annotated[bool, typer.Option(help="Any rejected record is an error; nothing is written.")] = False,
    outage: Annotated[list[str] | None, typer.Option(help="START/END (local, end exclusive) when the feed was down: those slots are written as missing, not 0. Repeatable.")] = None,
    silence_minutes: Annotated[int | None, typer.Option(help="Whole-grid silence lasting this many minutes or more is an outage: written as missing.")] = None,
) -> None:
    """Count trip records' pick-ups and drop-offs per interval and cell into a generic .npz (see docs/data.md)."""
    import shlex

    from stvfm.data.records import (
        grid_records,
        parse_box,
        parse_interval,
        parse_local_time,
        parse_outage,
        parse_shape,
    )

    named = {"start_time": start_time, "end_time": end_time, "start_lon": start_lon, "start_lat": start_lat,
             "end_lon": end_lon, "end_lat": end_lat, "start_zone": start_zone, "end_zone": end_zone}
    result = grid_records(
        sources, output, time_zone=tz, interval_minutes=parse_interval(interval),
        shape=parse_shape(grid) if grid is not None else None, cell_metres=cell_metres,
        box=parse_box(bbox) if bbox is not None else None,
        start=parse_local_time(start, "--start") if start is not None else None,
        end=parse_local_time(end, "--end") if end is not None else None,
        columns={role: column for role, column in named.items() if column is not None},
        zones=zones, time_format=time_format, strict=strict,
        outages=[parse_outage(text) for text in outage or []], silence_minutes=silence_minutes,
        command=shlex.join((ctx.obj or {}).get("argv", ["stvfm", "data", "grid", *sources])),
    )
    metadata = result.metadata
    files = Table(title="record files")
    for column in ("file", "layout", "rows"):
        files.add_column(column)
    for source in metadata["sources"]:
        files.add_row(source["path"], source["layout"], f"{source['rows']:,}")
    console.print(files)
    _print_rejections(metadata["rejected"], metadata["kept"])
    box, grid_info, period = metadata["box"], metadata["grid"], metadata["period"]
    fences = "; ".join(f"{axis}: {fence['beyond']:,} of {fence['values']:,} beyond {fence['fences']}"
                       for axis, fence in metadata["outlier_fences"].items())
    console.print(f"box {'inferred' if box['inferred'] else 'given'}: west {box['west']}, south {box['south']}, "
                  f"east {box['east']}, north {box['north']}; {grid_info['rows']}x{grid_info['cols']} cells of about "
                  f"{grid_info['cell_metres'][0]:.0f} x {grid_info['cell_metres'][1]:.0f} m", highlight=False)
    if fences:
        console.print(f"gross outliers fenced out: {fences}", highlight=False)
    console.print(f"period {period['start']} to {period['end']} (exclusive), {metadata['interval_minutes']} min slots, "
                  f"local time {metadata['time_zone']}", highlight=False)
    for kind, meaning in (("skipped", "hold the hour clocks skip (0 unless a record is stamped in it)"),
                          ("repeated", "hold both passes of the repeated hour")):
        if metadata["dst"][kind]:
            console.print(f"DST: slots {', '.join(metadata['dst'][kind])} {meaning}", highlight=False)
    console.print(f"[green]wrote[/] {result.output} {list(result.series.shape)} channels "
                  f"{', '.join(result.series.channel_names)}", highlight=False)


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
