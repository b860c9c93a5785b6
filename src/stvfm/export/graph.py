"""The forecast as an ONNX graph: export, parity with PyTorch under ONNX Runtime, int8, and the speed benchmark.

The graph takes the model's batch tensors (``x`` scaled history, ``x_time``, ``y_time``, ``start``,
and ``daily`` / ``weekly`` for models with periodic context; the window axis is dynamic) and returns
``forecast`` in scaled units; scaling, clamping and de-scaling stay outside it, in the forecaster.
A graph is shipped only when ONNX Runtime reproduces PyTorch on the run's whole test split within
``PARITY_TOLERANCE`` (scaled units); otherwise the export says why there is none. It is fp32, made
with PyTorch's TorchScript-based exporter, and holds every weight, the frozen backbone's included
(an ONNX graph is self-contained). Dynamic int8 quantisation is a separate file, never used silently:
its test-error change is measured and recorded beside it.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from stvfm.data.batch import Batch, random_batch
from stvfm.data.prepared import PreparedData
from stvfm.errors import CheckpointError, ConfigError
from stvfm.export import bundle
from stvfm.export.forecaster import ExportedForecaster, load

OPSET = 17
#: Largest absolute difference between ONNX Runtime and PyTorch forecasts (scaled units) a shipped graph may show.
PARITY_TOLERANCE = 1e-4
#: Windows per ONNX Runtime call in the parity check.
PARITY_BATCH = 64


class _BatchForecast(nn.Module):
    """The model's ``forecast`` output as a function of its batch tensors in a fixed order (what ONNX needs)."""

    def __init__(self, model: nn.Module, keys: tuple[str, ...]):
        super().__init__()
        self.model, self.keys = model, keys

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model(dict(zip(self.keys, tensors, strict=True)))["forecast"]


def export_graph(forecaster: ExportedForecaster, path: Path) -> tuple[str, ...]:
    """Write the fp32 forecast graph of ``forecaster`` to ``path``; its input names. Raises what the exporter raises."""
    batch = _prediction_batch(forecaster.shape, 2)
    keys = tuple(batch)
    wrapper = _BatchForecast(forecaster.model, keys).eval()
    # PyTorch's fused Transformer-layer fast path is one operator ONNX lacks: export the layers' plain operations
    with torch.no_grad(), warnings.catch_warnings(), _without_fastpath():
        warnings.simplefilter("ignore")  # tracer warnings about Python-side shape arithmetic, checked by parity below
        torch.onnx.export(wrapper, tuple(batch[key] for key in keys), str(path), dynamo=False, opset_version=OPSET,
                          input_names=list(keys), output_names=["forecast"],
                          dynamic_axes={name: {0: "windows"} for name in [*keys, "forecast"]})
    return keys


def _onnxruntime_errors() -> tuple[type[Exception], ...]:
    """ONNX Runtime's own error types (none derives from RuntimeError): a graph it cannot load or run."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    return state.Fail, state.InvalidArgument, state.InvalidGraph, state.NotImplemented, state.RuntimeException


@contextlib.contextmanager
def _without_fastpath():
    enabled = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(enabled)


def session(path: Path, threads: int | None = None):
    """An ONNX Runtime CPU session of the graph at ``path``, on ``threads`` threads (default: PyTorch's count)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_session(ort_session, batch: Batch) -> np.ndarray:
    """The graph's forecast (scaled units) for a model batch."""
    names = [node.name for node in ort_session.get_inputs()]
    return ort_session.run(["forecast"], {name: batch[name].numpy() for name in names})[0]


def write_onnx(forecaster: ExportedForecaster, data: PreparedData, quantize: bool) -> dict[str, Any]:
    """``model.onnx`` (and ``model.int8.onnx``) beside the export's other files, checked on the test split;
    the record (``onnx.json``), or ``{"reason": ...}`` when this model has no faithful graph."""
    folder = forecaster.folder
    path = folder / bundle.ONNX
    if forecaster.config.precision != "32":
        forecaster = load(folder, precision="32")  # the graph is fp32: compared with the same weights in fp32
    windows, targets = _test_windows(forecaster, data)
    try:
        keys = export_graph(forecaster, path)
        ort_session = session(path)
        torch_forecast, onnx_forecast = [], []
        for begin in range(0, len(windows), PARITY_BATCH):
            batch = forecaster.batch(windows[begin:begin + PARITY_BATCH])
            torch_forecast.append(forecaster.predict_scaled(batch).numpy())
            onnx_forecast.append(run_session(ort_session, batch))
    except (RuntimeError, ValueError, TypeError, *_onnxruntime_errors()) as error:  # what cannot be expressed or run
        path.unlink(missing_ok=True)
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return {"file": None, "reason": f"no faithful ONNX graph of {forecaster.model_name} "
                                         f"({type(error).__name__}: {reason[:200]})"}
    torch_forecast, onnx_forecast = np.concatenate(torch_forecast), np.concatenate(onnx_forecast)
    difference = float(np.abs(torch_forecast - onnx_forecast).max())
    if not difference <= PARITY_TOLERANCE:
        path.unlink()
        return {"file": None, "reason": f"ONNX Runtime differs from PyTorch by {difference:.2e} (scaled units) on the "
                                        f"test split, over the {PARITY_TOLERANCE:g} allowed"}
    record: dict[str, Any] = {"file": bundle.ONNX, "opset": OPSET, "inputs": list(keys), "output": "forecast (scaled)",
                              "max_abs_diff_scaled": difference, "tolerance": PARITY_TOLERANCE,
                              "windows": len(windows), "exporter": f"torch.onnx (TorchScript) {torch.__version__}"}
    if quantize:
        record["int8"] = _quantized(forecaster, path, windows, targets, onnx_forecast)
    from stvfm.atomic import write_json_atomic

    write_json_atomic(folder / bundle.ONNX_RECORD, record)
    return record


def _quantized(forecaster: ExportedForecaster, path: Path, windows: list, targets: np.ndarray,
               fp32_forecast: np.ndarray) -> dict[str, Any]:
    """``model.int8.onnx`` by ONNX Runtime's dynamic quantisation, with its test errors beside the fp32 graph's."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    int8_path = path.with_name(bundle.ONNX_INT8)
    logging.disable(logging.WARNING)  # its advice to pre-process is for static quantisation; this is dynamic
    try:
        quantize_dynamic(str(path), str(int8_path), weight_type=QuantType.QInt8)
    finally:
        logging.disable(logging.NOTSET)
    int8_session = session(int8_path)
    int8_forecast = np.concatenate([run_session(int8_session, forecaster.batch(windows[begin:begin + PARITY_BATCH]))
                                    for begin in range(0, len(windows), PARITY_BATCH)])
    errors = {}
    for name, scaled in (("fp32", fp32_forecast), ("int8", int8_forecast)):
        error = forecaster.scaler.inverse_transform(np.clip(scaled, -1.0, 1.0)).astype(np.float64) - targets
        errors[name] = (float(np.abs(error).mean()), float(np.sqrt((error ** 2).mean())))
    (mae, rmse), (mae_fp32, rmse_fp32) = errors["int8"], errors["fp32"]
    return {"file": bundle.ONNX_INT8, "method": "onnxruntime.quantization.quantize_dynamic, QInt8 weights",
            "mae": mae, "rmse": rmse, "mae_fp32": mae_fp32, "rmse_fp32": rmse_fp32,
            "mae_change_percent": 100 * (mae / mae_fp32 - 1), "rmse_change_percent": 100 * (rmse / rmse_fp32 - 1),
            "max_abs_diff_scaled": float(np.abs(int8_forecast - fp32_forecast).max())}


def _test_windows(forecaster: ExportedForecaster, data: PreparedData) -> tuple[list, np.ndarray]:
    """The run's test windows as ``check_input`` gives them, and their true futures in original units."""
    starts = data.dataset("test").window_starts
    values, stamps = data.series.values, data.series.timestamps
    windows, targets = [], []
    for start in starts:
        end = start + forecaster.history
        windows.append(forecaster.check_input(values[end - forecaster.input_steps:end],
                                              stamps[end - forecaster.input_steps:end]))
        targets.append(values[end:end + forecaster.horizon])
    return windows, np.stack(targets).astype(np.float64)


def _prediction_batch(shape, windows: int) -> Batch:
    """A well-formed batch without the future values (the graph never sees them)."""
    return {key: value for key, value in random_batch(shape, windows).items() if key != "y"}


def benchmark(folder: str | Path, batch_sizes: tuple[int, ...] = (1, 64), repeats: int = 15,
              threads: int | None = None) -> dict[str, Any]:
    """ms per window of PyTorch and ONNX Runtime (and the int8 graph when the export has one) on the same
    batches, in one process: engines interleaved call by call so a noisy, shared CPU slows them alike;
    medians over ``repeats`` calls after one untimed call each; speed-ups as ratios to PyTorch."""
    forecaster = load(folder, precision="32")
    graphs = {"onnxruntime": forecaster.folder / bundle.ONNX, "onnxruntime-int8": forecaster.folder / bundle.ONNX_INT8}
    if not graphs["onnxruntime"].is_file():
        raise CheckpointError(f"{forecaster.folder}: has no {bundle.ONNX}; export the run with --onnx")
    if repeats < 1 or not batch_sizes or min(batch_sizes) < 1:
        raise ConfigError(f"repeats and batch sizes must be at least 1, got {repeats} and {batch_sizes}")
    if threads:
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()
    sessions = {name: session(path, threads) for name, path in graphs.items() if path.is_file()}
    engines = {"pytorch": forecaster.predict_scaled,
               **{name: (lambda batch, s=ort: run_session(s, batch)) for name, ort in sessions.items()}}
    rows = []
    for batch_size in batch_sizes:
        batch = _prediction_batch(forecaster.shape, batch_size)
        timings: dict[str, list[float]] = {name: [] for name in engines}
        for engine in engines.values():
            engine(batch)
        for _ in range(repeats):
            for name, engine in engines.items():
                started = time.perf_counter()
                engine(batch)
                timings[name].append((time.perf_counter() - started) * 1000 / batch_size)
        medians = {name: statistics.median(values) for name, values in timings.items()}
        rows.append({"batch_size": batch_size, "ms_per_window": medians,
                     "speedup_vs_pytorch": {name: medians["pytorch"] / value for name, value in medians.items()
                                            if name != "pytorch"}})
    onnx_record = bundle.read_json(forecaster.folder, bundle.ONNX_RECORD) if (
        forecaster.folder / bundle.ONNX_RECORD).is_file() else {}
    return {"export": str(forecaster.folder), "model": forecaster.model_name, "threads": threads, "repeats": repeats,
            "rows": rows, "int8": onnx_record.get("int8"),
            "max_abs_diff_scaled": onnx_record.get("max_abs_diff_scaled")}
