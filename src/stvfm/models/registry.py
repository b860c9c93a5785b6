"""Registry of forecasters by name, in the manner of timm's ``create_model``.

A model file registers its class and its typed config with ``@register_model``; the CLI,
training and reports only ever call ``create_model(name, shape, **overrides)``.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stvfm.errors import ConfigError, StvfmError
from stvfm.models.base import Forecaster
from stvfm.shape import ForecastShape


@dataclass(frozen=True)
class ModelEntry:
    name: str
    cls: type[Forecaster]
    config_cls: type
    summary: str


_MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, config_cls: type) -> Callable[[type[Forecaster]], type[Forecaster]]:
    """Class decorator: ``@register_model("stid", STIDConfig)``. The class takes ``(shape, config)``."""

    def decorate(cls: type[Forecaster]) -> type[Forecaster]:
        if name in _MODELS:
            raise ValueError(f"model {name!r} registered twice")
        summary = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        _MODELS[name] = ModelEntry(name, cls, config_cls, summary)
        return cls

    return decorate


def ensure_loaded() -> None:
    """Import every model file of the package once, so each registers itself (plugins found by walking
    the folder, not named here: a new model is one new file)."""
    for module in pkgutil.walk_packages([str(Path(__file__).parent)], prefix="stvfm.models."):
        if module.name.rsplit(".", 1)[-1] not in {"base", "registry"}:
            importlib.import_module(module.name)


def list_models() -> list[ModelEntry]:
    ensure_loaded()
    return sorted(_MODELS.values(), key=lambda entry: entry.name)


def get_model_entry(name: str) -> ModelEntry:
    ensure_loaded()
    if name not in _MODELS:
        known = ", ".join(sorted(_MODELS))
        raise ConfigError(f"unknown model {name!r}; known models: {known}")
    return _MODELS[name]


def build_config(name: str, overrides: dict[str, Any] | None = None) -> Any:
    """The model's default typed config with ``overrides`` applied (unknown keys are an error)."""
    entry = get_model_entry(name)
    overrides = dict(overrides or {})
    fields = {f.name: f for f in dataclasses.fields(entry.config_cls)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ConfigError(f"model {name!r} has no option(s) {', '.join(unknown)}; options: {', '.join(fields)}")
    defaults = entry.config_cls()
    for key, value in overrides.items():  # "--set flow_weight=1" means 1.0: one value, one record, one folder name
        if isinstance(getattr(defaults, key), float) and isinstance(value, int) and not isinstance(value, bool):
            overrides[key] = float(value)
    return dataclasses.replace(defaults, **overrides)


def resolved_options(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every option of the model, defaults filled in, as plain YAML/JSON values (tuples become lists).

    Run records store this, so a run still says what it trained after a default changes.
    """
    return json.loads(json.dumps(dataclasses.asdict(build_config(name, overrides))))


def recorded_options(name: str, recorded: dict[str, Any] | None) -> dict[str, Any]:
    """Every option a run record trained with. Records written before options were stored in full
    leave defaults out; an option whose default has changed since is read with the value it had
    then (the config class's ``FORMER_DEFAULTS``), never with today's default."""
    former = getattr(get_model_entry(name).config_cls, "FORMER_DEFAULTS", {})
    return resolved_options(name, {**former, **(recorded or {})})


def options_added_later(name: str) -> dict[str, Any]:
    """Options ``name`` gained after runs of it were first recorded (its config class's ``ADDED_LATER``), with
    the default every earlier run had: at that default they leave a ledger record's name as it was."""
    try:
        config_cls = get_model_entry(name).config_cls
    except StvfmError:
        return {}
    added = getattr(config_cls, "ADDED_LATER", ())
    return {field.name: field.default for field in dataclasses.fields(config_cls) if field.name in added}


def create_model(name: str, shape: ForecastShape, **overrides: Any) -> Forecaster:
    entry = get_model_entry(name)
    return entry.cls(shape, build_config(name, overrides))
