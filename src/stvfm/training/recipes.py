"""Recipes: each model's published training settings, as YAML files users can read and override.

A run's settings resolve in layers, later ones winning: ``RunConfig`` defaults, the model's
recipe (``stvfm/recipes/<model>.yaml``, with its per-dataset overrides), a ``--config`` file,
then the command-line flags given. A ``config.yaml`` written by a run is itself a valid
``--config`` file and resolves to the same run.
"""

from __future__ import annotations

import dataclasses
import itertools
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from stvfm.data.registry import protocol_family
from stvfm.errors import ConfigError
from stvfm.models.registry import resolved_options
from stvfm.training.config import AUTO_PRECISION, RunConfig
from stvfm.training.settings import NESTED_KEYS, OptimConfig, merged

#: Keys a recipe or config file may hold besides RunConfig's fields.
RECIPE_ONLY_KEYS = ("datasets", "departures")


def recipe_file(model: str) -> Path | None:
    """The packaged recipe of ``model``; None when it has none (classical models)."""
    path = Path(str(resources.files("stvfm.recipes").joinpath(f"{model}.yaml")))
    return path if path.is_file() else None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A recipe or ``--config`` file as a dict of RunConfig fields, checked before any run starts."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; --config takes a YAML file (a run's config.yaml is one)")
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        payload = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as error:
        raise ConfigError(f"{path}: not valid YAML ({(str(error).splitlines() or ['nested too deep'])[0]})") from None
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        raise ConfigError(f"{path}: expected a mapping of run settings, got {type(payload).__name__}")
    known = {f.name for f in dataclasses.fields(RunConfig)} | set(RECIPE_ONLY_KEYS)
    unknown = sorted(set(payload) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)}")
    for key in (*NESTED_KEYS, "datasets"):
        if payload.get(key) is not None and not isinstance(payload[key], dict):
            raise ConfigError(f"{path}: {key} must be a mapping")
    optim_fields = {f.name for f in dataclasses.fields(OptimConfig)}
    bad_optim = sorted(set(payload.get("optim") or {}) - optim_fields)
    if bad_optim:
        raise ConfigError(f"{path}: unknown optim setting(s) {', '.join(bad_optim)}; known: {', '.join(sorted(optim_fields))}")
    return payload


def for_dataset(settings: dict[str, Any], dataset: str) -> dict[str, Any]:
    """A recipe's general settings with its ``datasets: {<dataset>: ...}`` overrides applied."""
    general = {k: v for k, v in settings.items() if k not in RECIPE_ONLY_KEYS}
    overrides = settings.get("datasets") or {}
    specific = overrides.get(dataset) or overrides.get(protocol_family(dataset)) or {}
    return merged(general, specific)


def published_settings(model: str, dataset: str) -> dict[str, Any]:
    """The model's published settings for ``dataset`` (empty for a model without a recipe)."""
    path = recipe_file(model)
    return for_dataset(read_config_file(path), dataset) if path else {}


def departures(model: str) -> list[str]:
    """Where the recipe knowingly differs from the original, as its file says."""
    path = recipe_file(model)
    return list(read_config_file(path).get("departures") or []) if path else []


#: What a printed recipe leaves out: where a run writes and the digest of the data it read are the run's own.
RUN_OWN_SETTINGS = ("out", "data_sha256")


def recipe(model: str, dataset: str) -> str:
    """The settings ``fit`` starts ``model`` on ``dataset`` from (defaults < recipe), as a ``--config`` file to
    read, save and edit: the recipe file's sources and departures as comments, every run setting spelled
    out (``out`` is left to the run), the model options it leaves at their defaults listed in comments."""
    config = resolve_run_config({"model": model, "dataset": dataset, "out": "-"})
    path = recipe_file(model)
    sources = list(itertools.takewhile(lambda line: line.startswith("#"), path.read_text().splitlines())) if path else []
    lines = [*(sources or [f"# {model}: no published recipe (a classical model or RunConfig's defaults)"]),
             f"# resolved for {dataset}: RunConfig defaults < {path.name if path else 'no recipe'}; "
             "edit and pass as --config FILE (flags win over it)"]
    lines += [f"# departure: {line}" for line in departures(model)]
    if path:
        lines.append(f"# each setting's source: {path}")
    settings = {key: value for key, value in config.to_dict().items() if key not in RUN_OWN_SETTINGS}
    unset = {key: value for key, value in resolved_options(model).items() if key not in settings["model_options"]}
    if published_settings(model, dataset).get("precision") == AUTO_PRECISION:  # kept: another host resolves it anew
        lines.append(f"# precision {AUTO_PRECISION}: {settings['precision']} on this host")
        settings["precision"] = AUTO_PRECISION
    # the model's other options stay unset, as in the run fit would start: set explicitly, they would be
    # the same run under another record name
    defaults = [f"#   {line}" for line in yaml.safe_dump(unset, sort_keys=False).splitlines()] if unset else []
    return "\n".join([*lines, yaml.safe_dump(settings, sort_keys=False).rstrip(),
                      *(["# model options left at their defaults (set any under model_options):"] + defaults
                        if defaults else [])]) + "\n"


#: Model options that have a flag of their own (ST-VFM's): given as flags, they join ``model_options``.
MODEL_OPTION_FLAGS = ("backbone", "weights", "variant")


def resolve_run_config(flags: dict[str, Any], config_file: str | Path | None = None,
                       use_recipe: bool = True) -> RunConfig:
    """The run's settings: defaults < recipe < ``config_file`` < ``flags`` (only the flags given).

    ``flags`` holds RunConfig fields; ``optim`` and ``model_options`` as partial dicts, and any of
    ``MODEL_OPTION_FLAGS``, which win over the same key in ``model_options``.
    """
    lifted = {key: flags[key] for key in MODEL_OPTION_FLAGS if flags.get(key) is not None}
    flags = {key: value for key, value in flags.items() if key not in MODEL_OPTION_FLAGS}
    if lifted:
        flags["model_options"] = {**flags.get("model_options", {}), **lifted}
    from_file = read_config_file(config_file) if config_file else {}
    model = flags.get("model") or from_file.get("model")
    dataset = flags.get("dataset") or from_file.get("dataset")
    if not model or not dataset:
        raise ConfigError("a run needs --model and --dataset (as flags or in the --config file)")
    if from_file.get("model") and flags.get("model") and from_file["model"] != flags["model"]:
        raise ConfigError(f"{config_file}: is a config of model {from_file['model']!r}, not {flags['model']!r}")
    layers = [published_settings(model, dataset) if use_recipe else {}, for_dataset(from_file, dataset), flags]
    settings = merged(*layers) | {"model": model, "dataset": dataset}
    if not settings.get("out"):
        raise ConfigError("a run needs --out (as a flag or in the --config file)")
    try:
        return RunConfig.from_dict(settings)
    except TypeError as error:
        raise ConfigError(f"bad run settings ({error})") from None


#: What a pre-training takes from the model's recipe: the model and its optimiser. Its schedule (epochs,
#: patience) stays pre-training's own, since it sees every dataset's windows in each epoch.
PRETRAIN_RECIPE_KEYS = ("model_options", "batch_size", "optim")


def resolve_pretrain_settings(flags: dict[str, Any], datasets: list[str], use_recipe: bool = True) -> dict[str, Any]:
    """Pre-training settings: defaults < the recipe's model and optimiser (for the first dataset) < ``flags``."""
    if not flags.get("model"):
        raise ConfigError("a pre-training needs --model")
    published = published_settings(flags["model"], datasets[0]) if use_recipe and datasets else {}
    return merged({key: published[key] for key in PRETRAIN_RECIPE_KEYS if key in published}, flags)
