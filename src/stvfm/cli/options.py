"""What every command group shares: the console, the option types, and turning flags into library values.

Command modules parse with these, call one library function, and print; defaults that are library
settings stay in the library (an option left out is not passed on). The options of run settings are
not written here: ``with_settings`` generates them from their one declaration (``training.settings``).
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
import yaml
from rich.console import Console

from stvfm.errors import ConfigError
from stvfm.training.settings import RunSettings, channel_from_flag, declared

# Piped output (logs, CI) gets a wide console: results tables would otherwise be cut to 80 columns.
console = Console() if sys.stdout.isatty() else Console(width=160)

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


def channel_index(channel: int | None) -> int | str:
    """``--channel`` of a command with no run settings: none given is channel 0, -1 is every channel."""
    return 0 if channel is None else channel_from_flag(channel)


def given(**values: Any) -> dict[str, Any]:
    """The values the user gave (not None): what a command passes on, so the library's defaults hold."""
    return {key: value for key, value in values.items() if value is not None}


def _flag_type(hint: Any) -> Any:
    """The type a flag reads for a setting of type ``hint``: a count-or-fraction reads a number, a
    count-or-name reads text (the declaration's ``parse`` turns it into the setting), a mapping reads
    repeated ``KEY=VALUE`` pairs."""
    options = {option for option in typing.get_args(hint) if option is not type(None)} \
        if typing.get_origin(hint) in (typing.Union, types.UnionType) else {hint}
    if options == {float, int}:
        return float
    if len(options) > 1:
        return str
    (kind,) = options
    return list[str] if kind is dict or typing.get_origin(kind) is dict else kind


def setting_option(name: str, required: bool = False, default: Any = None, default_words: str = "",
                   declarations: type = RunSettings) -> Any:
    """The typer option of run setting ``name``: flag, type, help and allowed values from its declaration."""
    field, hint = declared(name, declarations)
    meta, key = field.metadata, name.rpartition(".")[2]
    kind = _flag_type(hint)
    shown = default if default is not None else field.default
    help_text = meta["help"]
    if meta.get("choices"):
        help_text += f" One of: {', '.join(map(str, meta['choices']))}."
    if not required and shown not in (None, dataclasses.MISSING) and kind is not list[str]:
        help_text += f" Default: {default_words}{shown}."
    dashed = key.replace("_", "-")
    flags = meta.get("flag") or ((f"--{dashed}/--no-{dashed}",) if kind is bool else (f"--{dashed}",))
    option = typer.Option(*flags, help=help_text, envvar=meta.get("envvar"), show_default=False,
                          metavar="KEY=VALUE" if kind is list[str] else None)
    return Annotated[kind if required else Optional[kind], option]


def with_settings(*names: str, required: tuple[str, ...] = (), defaults: dict[str, Any] | None = None,
                  default_words: str = "", declarations: type = RunSettings) -> Callable:
    """Give a command one option per run setting in ``names`` (``optim.lr`` for the optimiser's), each with
    the type, flag, help and allowed values of its declaration, and hand it those the user gave as
    ``settings``: RunConfig values (``parse`` applied, the optimiser's under ``optim``), ready for the
    library, which checks them. ``defaults``: the command's own defaults where they differ from the
    declaration's; ``default_words`` prefixes the default shown (``fit``: "the recipe's, else ")."""
    defaults = defaults or {}

    def decorate(command: Callable) -> Callable:
        signature = inspect.signature(command, eval_str=True)
        own = [parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY) for parameter in signature.parameters.values()
               if parameter.name != "settings"]
        added = [inspect.Parameter(name.rpartition(".")[2], inspect.Parameter.KEYWORD_ONLY,
                                   annotation=setting_option(name, name in required, defaults.get(name),
                                                             default_words, declarations),
                                   default=inspect.Parameter.empty if name in required else defaults.get(name))
                 for name in names]

        def with_given_settings(**values: Any) -> Any:
            settings: dict[str, Any] = {}
            for name in names:
                owner, _, key = name.rpartition(".")
                value = values.pop(key)
                if value is None or value == []:
                    continue
                parse = declared(name, declarations)[0].metadata.get("parse")
                value = parse_options(value) if isinstance(value, list) else parse(value) if parse else value
                (settings.setdefault(owner, {}) if owner else settings)[key] = value
            return command(**values, settings=settings)

        parameters = [*added, *own]
        with_given_settings.__signature__ = signature.replace(parameters=parameters)
        with_given_settings.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
        for attribute in ("__name__", "__qualname__", "__doc__", "__module__"):
            setattr(with_given_settings, attribute, getattr(command, attribute))
        return with_given_settings

    return decorate


# Options of run settings that commands without a RunConfig (data, ledger, bench, export) share.
ChannelOption = setting_option("channel")
RootOption = setting_option("data_root")
SetOption = setting_option("model_options")
AcceleratorOption = setting_option("accelerator")
