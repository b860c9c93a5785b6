"""The library behind ``scripts/device-suite.sh``: a smoke test of every registered model on one device.

For each model: one bf16-autocast and one fp32 training step and a ``predict`` (classical models:
``fit_series`` on a short series, then ``predict``), all on the device, so CUDA pitfalls (tensors
left on the CPU, dtype mismatches under autocast, non-finite losses) show in seconds before long
runs start. ``quick`` shrinks every model and the grid so the whole suite runs on one CPU core.

    python -m stvfm.experiments.device_suite smoke --out smoke.json [--device cuda] [--quick]
    python -m stvfm.experiments.device_suite city --out city.npz   # the quick suite's synthetic data
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from typing import Any

import numpy as np
import torch

from stvfm.atomic import write_json_atomic
from stvfm.backbones.factory import SMALL_BACKBONE_CONFIGS
from stvfm.data.batch import random_batch
from stvfm.models.registry import build_config, create_model, list_models
from stvfm.shape import ForecastShape

#: bikenyc1's grid: the size a real run meets; quick mode a 4 x 2 grid (ARIMA fits per cell).
FULL_SHAPE = ForecastShape(channels=1, height=16, width=8, slots_per_day=24)
QUICK_SHAPE = ForecastShape(channels=1, height=4, width=2, slots_per_day=24)


def model_options(name: str, quick: bool) -> dict[str, Any]:
    """Offline weights everywhere (no hub on the device); quick mode also shrinks the big models."""
    if name == "stvfm":
        tiny = {"backbone_overrides": SMALL_BACKBONE_CONFIGS["dinov2-s"], "temporal_dim": 16, "temporal_heads": 2,
                "encoder_layers": 1, "decoder_layers": 1}
        return {"weights": "random", **(tiny if quick else {})}
    if name == "stllm":
        return {"weights": "random", **({"llm_layers": 2, "gpt2_overrides": {"n_embd": 32, "n_layer": 2, "n_head": 2}}
                                         if quick else {})}
    if name == "arima":
        return {"workers": 1}
    return {}


def _shape_for(name: str, options: dict[str, Any], quick: bool) -> ForecastShape:
    config = build_config(name, options)
    base = QUICK_SHAPE if quick else FULL_SHAPE
    return ForecastShape(**{**base.__dict__, "daily_context": int(getattr(config, "daily_context", 0)),
                            "weekly_context": int(getattr(config, "weekly_context", 0))})


def _finite(value: torch.Tensor, what: str) -> None:
    if not torch.isfinite(value).all():
        raise RuntimeError(f"{what} is not finite")


def smoke_model(name: str, device: str, quick: bool) -> dict[str, Any]:
    """Train steps (bf16, then fp32) and a predict of one model on ``device``; raises on any failure."""
    options = model_options(name, quick)
    shape = _shape_for(name, options, quick)
    torch.manual_seed(0)
    model = create_model(name, shape, **options)
    started, row = time.perf_counter(), {}
    if not model.trainable:  # fitted on the CPU, then moved, as ``fit`` does before Lightning moves the model
        steps = 24 * 22  # three weeks and a day: room for weekly context
        values = np.random.default_rng(0).uniform(-1, 1, (steps, shape.channels, shape.height, shape.width))
        times = np.stack([(np.arange(steps) // 24) % 7, np.arange(steps) % 24], axis=1)
        model.fit_series(values.astype(np.float32), times, train_end=steps)
    model.to(device)
    batch = {key: value.to(device) for key, value in random_batch(shape, 4).items()}
    if model.trainable:
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        model.train()
        for precision in ("bf16", "fp32"):
            with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = model.loss(batch, model(batch))["loss"]
            _finite(loss.detach(), f"{precision} loss")
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            row[f"{precision}_loss"] = float(loss.detach())
    model.eval()
    prediction = model.predict(batch)
    if tuple(prediction.shape) != tuple(batch["y"].shape) or prediction.device.type != torch.device(device).type:
        raise RuntimeError(f"predict gave {tuple(prediction.shape)} on {prediction.device}, "
                           f"expected {tuple(batch['y'].shape)} on {device}")
    _finite(prediction.float(), "prediction")
    return {**row, "seconds": time.perf_counter() - started}


def smoke_test(device: str, quick: bool) -> dict[str, Any]:
    """Every registered model through ``smoke_model``; a failure is recorded with its reason, never fatal."""
    models = {}
    for entry in list_models():
        try:
            models[entry.name] = {"status": "ok", **smoke_model(entry.name, device, quick)}
        except Exception as error:  # one model's bug must not hide the others'
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
            models[entry.name] = {"status": f"failed: {type(error).__name__}: {reason}",
                                  "traceback": traceback.format_exc()}
    failed = [name for name, row in models.items() if row["status"] != "ok"]
    return {"device": device, "device_name": torch.cuda.get_device_name() if device == "cuda" else "cpu",
            "torch": torch.__version__, "quick": quick, "models": models, "failed": failed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stvfm.experiments.device_suite")
    parser.add_argument("stage", choices=("smoke", "city"))
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.stage == "city":
        from stvfm.data.synthetic import write_synthetic_city

        print(write_synthetic_city(args.out, days=10, height=4, width=4))
        return 0
    result = smoke_test(args.device, args.quick)
    write_json_atomic(args.out, result)
    print(f"smoke test on {result['device_name']}: {len(result['models']) - len(result['failed'])} of "
          f"{len(result['models'])} models ok" + (f"; failed: {', '.join(result['failed'])}" if result["failed"] else ""))
    return 1 if result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
