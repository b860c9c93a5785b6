"""Checkpoint I/O: writing atomically, reading safely, and rebuilding a checkpoint's model.

``test``, ``predict`` and ``fit --init-from`` read checkpoints only through here, and every
rebuilt model gets its options as the run recorded them (``RunConfig.from_record``), so an old
record that loads under one loads under all.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from stvfm.atomic import atomic_path
from stvfm.data.prepared import PreparedData, prepare_data
from stvfm.errors import CheckpointError, StvfmError
from stvfm.models.base import Forecaster
from stvfm.models.registry import create_model
from stvfm.shape import ForecastShape
from stvfm.training.config import RunConfig, protocol_for


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO through the project's atomic writes: a checkpoint is written beside
    its target and renamed over it, so a kill or a full disk never leaves a torn ``best``/``last.ckpt``
    (Lightning's own writer copies a temporary file in place when it sits on another file system)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any = None) -> None:
        if isinstance(checkpoint.get("stvfm"), dict) and isinstance(checkpoint.get("state_dict"), dict):
            checkpoint["stvfm"]["weights_sha256"] = weights_digest(checkpoint["state_dict"])
        with atomic_path(path) as tmp:
            try:
                torch.save(checkpoint, tmp)
            except RuntimeError as error:  # torch's zip writer reports a full disk or a write error this way
                lines = str(error).strip().splitlines() or [type(error).__name__]
                raise OSError(f"{lines[-1][:200]}; is the disk full?") from None


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of a state dict: recorded at save, checked at load,
    so weights changed after saving (a flipped byte the zip CRCs would also catch, or a re-packed file)
    are never trusted."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _damaged_member(path: Path) -> str | None:
    """The first member of a torch zip checkpoint whose bytes fail their CRC (torch.load never checks)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip()
    except zipfile.BadZipFile:
        return None  # not a zip (a legacy torch file or no checkpoint): torch.load says what it is


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint without executing pickled code, its structure checked; a bad file is a one-line error."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a regular file (a folder, pipe or device)")
    damaged = _damaged_member(path)
    if damaged:
        raise CheckpointError(f"{path}: damaged (member {damaged!r} fails its CRC check); it cannot be trusted")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's text would advise weights_only=False, i.e. running the file's code
        raise CheckpointError(f"{path}: not a readable stvfm checkpoint (it holds pickled objects other than "
                              "tensors and plain data, which stvfm never loads: they could run code)") from None
    except Exception as error:  # torch raises many types for truncated or foreign files
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path}: not a readable stvfm checkpoint ({reason[:160]})") from None
    problem = _checkpoint_problem(checkpoint)
    if problem:
        raise CheckpointError(f"{path}: not an stvfm checkpoint ({problem})")
    recorded = checkpoint["stvfm"].get("weights_sha256")
    if recorded is not None and recorded != weights_digest(checkpoint["state_dict"]):
        raise CheckpointError(f"{path}: its weights differ from the digest recorded when it was saved; "
                              "it cannot be trusted")
    return checkpoint


def _checkpoint_problem(checkpoint: Any) -> str | None:
    """What is wrong with a loaded checkpoint's structure, None when it has what stvfm reads."""
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("stvfm"), dict):
        return "no run record inside"
    run = checkpoint["stvfm"].get("run")
    if not isinstance(run, dict) or not isinstance(run.get("model"), str) \
            or not isinstance(run.get("model_options", {}), dict):
        return "its run record has no model name and options"
    state = checkpoint.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(key, str) and isinstance(value, torch.Tensor)
                                              for key, value in state.items()):
        return "its weights are not a mapping of names to tensors"
    return None


def build_checkpoint_model(path: str | os.PathLike, config: RunConfig, shape: ForecastShape) -> Forecaster:
    """The model a checkpoint's run record describes, with its weights; options that build no model are its fault."""
    try:
        model = create_model(config.model, shape, **config.model_options)
    except StvfmError as error:
        raise CheckpointError(f"{path}: its run record does not build a model ({error})") from None
    except (RuntimeError, MemoryError, ValueError, TypeError, OverflowError) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise CheckpointError(f"{path}: its model options do not build a model ({reason[:160]})") from None
    return model


def recorded_run(checkpoint: dict[str, Any], path: str | os.PathLike) -> RunConfig:
    """The run a loaded checkpoint records, model options as it trained them (former defaults filled in)."""
    return RunConfig.from_record(checkpoint["stvfm"]["run"], path)


def checkpoint_model(checkpoint: dict[str, Any], path: str | os.PathLike, config: RunConfig,
                     shape: ForecastShape) -> Forecaster:
    """The model ``config`` describes on ``shape``, carrying the checkpoint's weights."""
    model = build_checkpoint_model(path, config, shape)
    load_model_weights(model, checkpoint, path)
    return model


def restore(checkpoint_path: str | os.PathLike, dataset: str | None = None,
            overrides: dict[str, Any] | None = None) -> tuple[RunConfig, PreparedData, Forecaster]:
    """Rebuild the data and model a checkpoint was trained with and load its weights."""
    checkpoint = load_checkpoint(checkpoint_path)
    config = recorded_run(checkpoint, checkpoint_path)
    if dataset:
        config.dataset = dataset
    for key, value in (overrides or {}).items():
        setattr(config, key, value)
    data = prepare_data(config.dataset, protocol_for(config), root=config.data_root)
    return config, data, checkpoint_model(checkpoint, checkpoint_path, config, data.forecast_shape)


def start_from(model: Forecaster, config: RunConfig) -> None:
    """Fine-tuning: this run's model starts from another run's weights (same model, same grid)."""
    checkpoint = load_checkpoint(config.init_from)
    trained = checkpoint["stvfm"]["run"].get("model")
    if trained != config.model:
        raise CheckpointError(f"{config.init_from}: holds model {trained!r}, this run trains {config.model!r}")
    load_model_weights(model, checkpoint, config.init_from)


def load_model_weights(model: Forecaster, checkpoint: dict[str, Any], path: str | os.PathLike) -> None:
    """The checkpoint's model weights into ``model``, strictly: a misfit is the checkpoint's one-line error."""
    state = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise CheckpointError(f"{path}: weights do not fit model {type(model).__name__} ({first[:200]})") from None
