"""What every command group shares: the console, the option types, and turning flags into library values.

Command modules parse with these, call one library function, and print; defaults that are library
settings stay in the library (an option left out is not passed on).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
import yaml
from rich.console import Console

from stvfm.errors import ConfigError

# Piped output (logs, CI) gets a wide console: results tables would otherwise be cut to 80 columns.
console = Console() if sys.stdout.isatty() else Console(width=160)

ModelOption = Annotated[str, typer.Option("--model", "-m", help="Registered model name (see `stvfm models`).")]
DatasetOption = Annotated[str, typer.Option("--dataset", "-d", help="Registered dataset name or path to a generic file.")]
ChannelOption = Annotated[Optional[int], typer.Option(help="Channel index (default 0); -1 for all channels.")]
StepsOption = Annotated[Optional[int], typer.Option(help="Use only the first N steps (default: the dataset's period).")]
OutOption = Annotated[Path, typer.Option("--out", "-o", help="Run folder for metrics.json, config.yaml, checkpoints, logs.")]
RootOption = Annotated[Optional[str], typer.Option("--data-root", envvar="STVFM_DATA_ROOT", help="Folder holding the dataset folders.")]
GapsOption = Annotated[Optional[str], typer.Option("--gaps", help="A window whose history has missing values (NaN): 'last' (last observation carried forward, the default), 'slot-mean' (training mean of the slot of day) or 'skip' (left out). See docs/data.md.")]
SetOption = Annotated[Optional[list[str]], typer.Option("--set", help="Model option KEY=VALUE (YAML value), repeatable.")]
# Training options; one left out keeps the library's default for the command.
MaxEpochsOption = Annotated[Optional[int], typer.Option(help="Upper bound on epochs (default: the recipe's, else the library's); early stopping usually ends sooner.")]
MaxMinutesOption = Annotated[Optional[float], typer.Option(help="Stop training after this many minutes; test the best checkpoint so far.")]
PatienceOption = Annotated[Optional[int], typer.Option(help="Early-stopping patience in epochs without improvement of the validation metric (default: the recipe's, else the library's).")]
LimitTrainOption = Annotated[Optional[float], typer.Option(help="Fraction (<=1) or count (>1) of training batches per epoch.")]
LrOption = Annotated[Optional[float], typer.Option(help="Peak learning rate (default: the recipe's, else the library's).")]
WarmupOption = Annotated[Optional[float], typer.Option(help="Linear warm-up epochs (default: the recipe's, else the library's).")]
PrecisionOption = Annotated[Optional[str], typer.Option(help="32, bf16 (autocast) or auto (bf16 where the CPU or GPU computes it natively, else 32); default: the recipe's, else 32.")]
AcceleratorOption = Annotated[Optional[str], typer.Option(help="cpu, gpu or auto.")]
CheckpointOption = Annotated[Path, typer.Option("--checkpoint", "-c", help="A best.ckpt written by `stvfm fit`, or an export folder of `stvfm export`.")]
OverwriteOption = Annotated[bool, typer.Option(help="Clear the run files (config, metrics, checkpoints, logs) of another run in --out first.")]


def quiet_lightning() -> None:
    """Lightning sets its loggers to INFO when imported; keep its tips out of the results."""
    import logging

    import lightning  # noqa: F401  (must be imported before its level can stick)

    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """``--set KEY=VALUE`` pairs as model options, each value read as YAML."""
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {pair!r}")
        try:
            options[key.strip()] = yaml.safe_load(value)
        except (yaml.YAMLError, RecursionError) as error:
            reason = (str(error).strip().splitlines() or ["nested too deep"])[0]
            raise ConfigError(f"--set {key.strip()}: the value is not valid YAML ({reason})") from None
    return options


def batch_limit(limit: float) -> float | int:
    """Lightning reads a float as a fraction of the batches and an int as a count."""
    return int(limit) if limit > 1 else limit


def channel_index(channel: int | None) -> int | str:
    """``--channel``: none given is channel 0, -1 is every channel (``ALL_CHANNELS`` to the library)."""
    from stvfm.data.series import ALL_CHANNELS, ALL_CHANNELS_FLAG

    if channel is None:
        return 0
    return ALL_CHANNELS if channel == ALL_CHANNELS_FLAG else channel


def given(**values: Any) -> dict[str, Any]:
    """The values the user gave (not None): what a command passes on, so the library's defaults hold."""
    return {key: value for key, value in values.items() if value is not None}
