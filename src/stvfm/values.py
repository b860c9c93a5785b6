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
from typing import Any

from stvfm.errors import ConfigError

#: The largest count any size setting (layers, widths, batch, workers) may take: beyond it a model or
#: loader allocates until memory runs out instead of failing.
LARGEST_SIZE = 1 << 16


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


def check_fields(instance: Any, owner: str) -> None:
    """Every field of the dataclass ``instance`` against its declared type; a misfit is a ``ConfigError``
    naming ``owner.field``. A whole-number field above ``LARGEST_SIZE`` is refused as well."""
    hints = typing.get_type_hints(type(instance))
    for field in dataclasses.fields(instance):
        value = getattr(instance, field.name)
        problem = type_problem(value, hints.get(field.name, Any))
        if problem:
            raise ConfigError(f"{owner}{field.name}: expected {problem}, got {_describe(value)}")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > LARGEST_SIZE \
                and field.metadata.get("size", True):
            raise ConfigError(f"{owner}{field.name}: {value} is beyond any sane size (at most {LARGEST_SIZE})")
