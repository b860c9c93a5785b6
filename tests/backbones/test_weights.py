from __future__ import annotations

import huggingface_hub.constants
import pytest
import torch
from backbone_helpers import SMALL_CONFIGS, random_tokens
from safetensors.torch import save_file

from stvfm.backbones import create_backbone
from stvfm.backbones.registry import get_family
from stvfm.errors import CheckpointError, ConfigError


def test_path_round_trip_of_a_backbone_state_dict(tmp_path):
    original = create_backbone("tiny")
    file = tmp_path / "tiny.safetensors"
    save_file(original.state_dict(), file)
    loaded = create_backbone("tiny", weights=f"path:{file}")
    tokens = random_tokens(original)
    assert torch.equal(loaded(tokens), original(tokens))
    assert (loaded.weights.provider, loaded.weights.source) == ("path", str(file))
    assert loaded.weights.label == "Tiny ViT (tiny.safetensors)"


def test_path_round_trip_of_a_transformers_model_state_dict(tmp_path):
    family = get_family("clip-b16")
    model = family.new_model(family.build_config(**SMALL_CONFIGS["clip-b16"]))
    file = tmp_path / "clip.pt"
    torch.save(model.state_dict(), file)
    loaded = create_backbone("clip-b16", weights=f"path:{file}", **SMALL_CONFIGS["clip-b16"])
    tokens = random_tokens(loaded)
    with torch.no_grad():
        expected = model.post_layernorm(model.encoder(inputs_embeds=model.pre_layrnorm(tokens)).last_hidden_state)
    torch.testing.assert_close(loaded(tokens), expected)


def test_path_round_trip_of_a_transformers_folder(tmp_path):
    family = get_family("tiny")
    model = family.new_model(family.build_config())
    model.save_pretrained(tmp_path / "tiny-model")
    loaded = create_backbone("tiny", weights=f"path:{tmp_path / 'tiny-model'}")
    torch.testing.assert_close(loaded.post_norm.weight, model.layernorm.weight)
    assert torch.equal(loaded.blocks[0].attention.q_proj.weight, model.encoder.layer[0].attention.q_proj.weight)


def test_folder_of_another_size_is_a_checkpoint_error(tmp_path):
    family = get_family("tiny")
    family.new_model(family.build_config(num_hidden_layers=1)).save_pretrained(tmp_path / "shallow")
    with pytest.raises(CheckpointError, match="32 wide and 1 deep; backbone tiny is 32 wide and 2 deep"):
        create_backbone("tiny", weights=f"path:{tmp_path / 'shallow'}")


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_corrupt_weights_file_is_a_checkpoint_error(tmp_path, suffix):
    file = tmp_path / f"broken{suffix}"
    file.write_bytes(b"\x00 not a checkpoint \xff" * 10)
    with pytest.raises(CheckpointError, match=f"broken{suffix}: not a readable state dict"):
        create_backbone("tiny", weights=f"path:{file}")


def test_missing_keys_are_a_checkpoint_error(tmp_path):
    state = create_backbone("tiny").state_dict()
    del state["blocks.1.mlp.fc2.weight"]
    file = tmp_path / "partial.safetensors"
    save_file(state, file)
    with pytest.raises(CheckpointError, match="1 missing keys \\(first: blocks.1.mlp.fc2.weight\\)"):
        create_backbone("tiny", weights=f"path:{file}")


def test_unexpected_keys_are_a_checkpoint_error(tmp_path):
    state = create_backbone("tiny").state_dict()
    state["blocks.0.extra.weight"] = torch.zeros(2)
    file = tmp_path / "extra.safetensors"
    save_file(state, file)
    with pytest.raises(CheckpointError, match="1 unexpected keys"):
        create_backbone("tiny", weights=f"path:{file}")


def test_weights_of_another_width_are_a_checkpoint_error(tmp_path):
    file = tmp_path / "tiny.safetensors"
    save_file(create_backbone("tiny").state_dict(), file)
    with pytest.raises(CheckpointError, match="shapes do not fit backbone tiny"):
        create_backbone("tiny", weights=f"path:{file}", hidden_size=16)


def test_missing_path_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        create_backbone("tiny", weights=f"path:{tmp_path / 'nowhere.safetensors'}")


def test_overrides_do_not_apply_to_a_folder(tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(ConfigError, match="brings its own config"):
        create_backbone("tiny", weights=f"path:{tmp_path / 'folder'}", num_hidden_layers=1)


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """Offline, with an empty hub cache (huggingface_hub reads both settings at import)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))


@pytest.mark.parametrize("name, weights", [("clip-b16", "default"), ("deit-b", "hub"),
                                           ("videomae-s", "default"), ("dinov2-s", "hub:facebook/dinov2-small")])
def test_hub_weights_offline_are_a_checkpoint_error_that_says_what_to_do(offline_hub, name, weights):
    with pytest.raises(CheckpointError, match="could not load .* from the Hugging Face hub.*--weights random"):
        create_backbone(name, weights=weights)
