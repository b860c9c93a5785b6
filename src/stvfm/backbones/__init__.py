"""Frozen vision transformers for ST-VFM: families, weight providers, in-block adapters."""

from stvfm.backbones.adapters import add_adapters
from stvfm.backbones.base import VisionBackbone, WeightsInfo
from stvfm.backbones.registry import BackboneEntry, create_backbone, list_backbones

__all__ = ["BackboneEntry", "VisionBackbone", "WeightsInfo", "add_adapters", "create_backbone", "list_backbones"]
