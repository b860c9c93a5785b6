"""Checking a setting's value against its declared type before anything uses it.

Settings arrive from flags, ``--config`` files, ``--set`` (YAML), run records and checkpoints, so a
string where a number belongs, a float where a count belongs, NaN or infinity, or a size no machine
holds must be refused in one place, with one line naming the setting.

Imports from stvfm: ``stvfm.errors``.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Sequence
from typing import Any

from stvfm.errors import ConfigError

#: The largest count any size setting (layers, widths, batch, workers) may take: beyond it a model or
#: loader allocates until memory runs out instead of failing.
LARGEST_SIZE = 1 << 16


def setting(default: Any = dataclasses.MISSING, *, help: str, default_factory: Any = dataclasses.MISSING,
            choices: Sequence[Any] | None = None, minimum: float | None = None, above: float | None = None, maximum: float | None = None,
            below: float | None = None, size: bool = True, **metadata: Any) -> Any:
    """A dataclass field that declares a setting once: its default, help text and the values it may take
    (``choices``; ``minimum``/``maximum`` inclusive, ``above``/``below`` strict), which ``check_fields``
    enforces and command lines show. ``size=False``: a whole number that is no size (a seed, a step count),
    exempt from ``LARGEST_SIZE``."""
    bounds = {"choices": tuple(choices) if choices is not None else None, "minimum": minimum, "above": above,
              "maximum": maximum, "below": below}
    declared = {"help": help, "size": size, **bounds, **metadata}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=declared)


def range_problem(value: Any, declared: typing.Mapping[str, Any]) -> str | None:
    """What is wrong with a well-typed ``value`` for the choices and bounds ``declared`` (None: it fits);
    nothing (None) always fits, as an optional setting left open."""
    if value is None or isinstance(value, bool):
        return None
    choices = declared.get("choices")
    if choices is not None and value not in choices:
        return f"one of {', '.join(map(str, choices))}"
    if not isinstance(value, (int, float)):
        return None
    low, above, high, below = (declared.get(key) for key in ("minimum", "above", "maximum", "below"))
    if (low is not None and value < low) or (above is not None and not value > above) \
            or (high is not None and value > high) or (below is not None and not value < below):
        lower = f">= {low}" if low is not None else f"> {above}" if above is not None else ""
        upper = f"<= {high}" if high is not None else f"< {below}" if below is not None else ""
        return "a number " + " and ".join(part for part in (lower, upper) if part)
    return None


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{text[:60]}..." if len(text) > 60 else text


def type_problem(value: Any, hint: Any) -> str | None:
    """What is wrong with ``value`` for the declared type ``hint`` (None: it fits). Ints fit a float,
    bools fit only a bool, floats must be finite."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return None
    if origin in (typing.Union, types.UnionType):
        problems = [type_problem(value, option) for option in typing.get_args(hint)]
        return None if None in problems else " or ".join(dict.fromkeys(problems))
    if hint is type(None):
        return None if value is None else "nothing (null)"
    if hint is bool:
        return None if isinstance(value, bool) else "true or false"
    if hint is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else "a whole number"
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "a number"
        return None if math.isfinite(value) else "a finite number"
    if hint is str:
        return None if isinstance(value, str) else "a string"
    if hint is dict or origin is dict:
        return None if isinstance(value, dict) else "a mapping"
    if hint is tuple or origin is tuple:
        items = typing.get_args(hint)
        if not isinstance(value, (tuple, list)):
            return "a list"
        item = items[0] if items else Any
        return next((f"a list of {problem}" for problem in map(lambda v: type_problem(v, item), value) if problem), None)
    if isinstance(hint, type):
        return None if isinstance(value, hint) else f"a {hint.__name__}"
    return None


def check_value(name: str, value: Any, hint: Any, declared: typing.Mapping[str, Any]) -> None:
    """One setting's value against its declared type, choices, bounds and the size bound; a misfit is a
    ``ConfigError`` naming ``name``."""
    problem = type_problem(value, hint) or range_problem(value, declared)
    if problem:
        raise ConfigError(f"{name}: expected {problem}, got {_describe(value)}")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > LARGEST_SIZE \
            and declared.get("size", True):
        raise ConfigError(f"{name}: {value} is beyond any sane size (at most {LARGEST_SIZE})")


def check_fields(instance: Any, owner: str) -> None:
    """Every field of the dataclass ``instance`` as ``check_value`` checks it, named ``owner`` + field."""
    hints = typing.get_type_hints(type(instance))
    for field in dataclasses.fields(instance):
        check_value(f"{owner}{field.name}", getattr(instance, field.name), hints.get(field.name, Any), field.metadata)
