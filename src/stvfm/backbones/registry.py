"""The name table of frozen ViT families, in the manner of timm's model registry.

A leaf module: family files register into it with ``@register_backbone`` and the factory
reads it; it imports neither. The package ``__init__`` imports the factory, which imports
every family, so the table is complete whenever this module can be reached.
"""

from __future__ import annotations

from stvfm.backbones.base import BackboneFamily
from stvfm.errors import ConfigError

_FAMILIES: dict[str, BackboneFamily] = {}


def register_backbone(cls: type[BackboneFamily]) -> type[BackboneFamily]:
    """Class decorator that makes a family reachable by its ``name``."""
    if cls.name in _FAMILIES:
        raise ValueError(f"backbone {cls.name!r} registered twice")
    _FAMILIES[cls.name] = cls()
    return cls


def get_family(name: str) -> BackboneFamily:
    if name not in _FAMILIES:
        raise ConfigError(f"unknown backbone {name!r}; known backbones: {', '.join(sorted(_FAMILIES))}")
    return _FAMILIES[name]


def family_names() -> list[str]:
    return sorted(_FAMILIES)
