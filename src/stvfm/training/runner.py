"""Fit, test and evaluate runs: the library behind ``stvfm fit / test / evaluate``.

A run is described by one typed ``RunConfig``, resolved once and saved beside its outputs
(``config.yaml``), so every reported metric can be re-run from what sits next to it.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import pickle
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import yaml
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from stvfm.atomic import atomic_path, write_json_atomic, write_text_atomic
from stvfm.data.datamodule import GridDataModule
from stvfm.data.prepared import PreparedData, prepare_data
from stvfm.data.windows import ProtocolConfig
from stvfm.errors import CheckpointError, ConfigError, StvfmError
from stvfm.ledger import add as add_to_ledger
from stvfm.ledger import ledger_root, machine, stop_reason
from stvfm.models.base import Forecaster, ForecastShape
from stvfm.models.registry import build_config, create_model, recorded_options, resolved_options
from stvfm.training.folders import IN_PROGRESS_NAME, clear_run
from stvfm.training.metrics import ForecastMetrics
from stvfm.training.optim import OptimConfig
from stvfm.training.speed import cast_frozen_linears, compile_backbone
from stvfm.training.task import ForecastTask

#: What early stopping and the best checkpoint watch, for every model and variant: the validation
#: MSE of the forecast itself (scaled units), never a loss with an auxiliary term such as ST-VFM's flow.
SELECTION_METRIC = "val/mse_st"


#: What a field of ``RunConfig`` is to the run's identity (``field(metadata={"role": ...})``):
#: - identity: decides the result; a run folder, a resume or a reused result must agree on every one.
#: - budget: how long the same run trains; a larger budget extends a run rather than making another.
#: - placement: where and how fast it runs (folder, devices, workers, progress); results do not depend on it.
IDENTITY, BUDGET, PLACEMENT = "identity", "budget", "placement"


def _role(role: str, default: Any = dataclasses.MISSING, **kwargs: Any) -> Any:
    return field(default=default, metadata={"role": role}, **kwargs)


@dataclass
class RunConfig:
    """Everything that decides a run's result, each field declared identity, budget or placement once."""

    model: str = _role(IDENTITY)
    dataset: str = _role(IDENTITY)
    out: str = _role(PLACEMENT)
    channel: int | None = _role(IDENTITY, 0)
    steps: int | None = _role(IDENTITY, None)  # None: the dataset's default period (taxinyc1: the paper's 60 days)
    scaling: str = _role(IDENTITY, "train")  # "train" (fit on the training split) or "all" (UniST's variant)
    model_options: dict[str, Any] = _role(IDENTITY, default_factory=dict)
    max_epochs: int = _role(BUDGET, 200)
    max_minutes: float | None = _role(BUDGET, None)  # wall-clock cap on training; the best checkpoint so far is tested
    patience: int = _role(BUDGET, 20)  # early-stopping patience in epochs on validation loss
    batch_size: int | None = _role(IDENTITY, None)  # None: UniST's rule by grid size
    eval_batch_size: int | None = _role(PLACEMENT, None)
    limit_train_batches: float | int = _role(IDENTITY, 1.0)  # a fraction or a count, for quick runs
    precision: str = _role(IDENTITY, "32")  # "32" or "bf16" (bf16 autocast, CPU or GPU)
    compile_backbone: bool = _role(PLACEMENT, False)  # torch.compile the frozen VFM (speed only; results unchanged)
    seed: int = _role(IDENTITY, 0)
    init_from: str | None = _role(IDENTITY, None)  # checkpoint of the same model and grid whose weights start this run
    optim: OptimConfig = _role(IDENTITY, default_factory=OptimConfig)
    accelerator: str = _role(PLACEMENT, "auto")
    devices: int | str = _role(PLACEMENT, 1)
    num_nodes: int = _role(PLACEMENT, 1)
    strategy: str = _role(PLACEMENT, "auto")
    num_workers: int = _role(PLACEMENT, 0)
    data_root: str | None = _role(PLACEMENT, None)
    progress: bool = _role(PLACEMENT, True)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"optim": self.optim.to_dict()}

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> "RunConfig":
        payload = dict(payload)
        payload["optim"] = OptimConfig(**payload.get("optim", {}))
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in payload.items() if k in known})

    @classmethod
    def from_record(cls, payload: Any, where: str | os.PathLike) -> "RunConfig":
        """The run a saved record (config.yaml, metrics settings, checkpoint) describes, options as it trained them."""
        try:
            config = cls.from_dict(payload)
            config.model_options = recorded_options(config.model, config.model_options)
        except StvfmError:
            return config  # an unknown model or option: it differs from any run of today's models
        except (TypeError, ValueError, AttributeError) as error:
            raise CheckpointError(f"{where}: malformed run record ({type(error).__name__}: {str(error)[:160]})") from None
        return config

    def _fields(self, role: str) -> dict[str, Any]:
        values = self.to_dict()
        return {f.name: values[f.name] for f in dataclasses.fields(self) if f.metadata["role"] == role}

    def identity(self) -> dict[str, Any]:
        """The fields that identify the run, model options with every default filled in."""
        identity = self._fields(IDENTITY)
        try:
            identity["model_options"] = resolved_options(self.model, self.model_options)
        except StvfmError:
            pass
        return identity

    def budget(self) -> dict[str, Any]:
        return self._fields(BUDGET)

    def identity_differences(self, other: "RunConfig") -> list[str]:
        """Names of the identity fields on which ``other`` is another run."""
        mine, theirs = self.identity(), other.identity()
        return [key for key in mine if mine[key] != theirs[key]]

    def validate(self) -> None:
        """Refuse settings that would silently run something else than asked, before anything is written."""
        if self.channel is not None and (isinstance(self.channel, bool) or self.channel < 0):
            raise ConfigError(f"channel must be 0 or more (or all channels), got {self.channel}")
        if self.max_epochs < 0 or (self.max_epochs == 0 and not self.init_from):
            raise ConfigError(f"max epochs must be at least 1 (0 only with --init-from, to test its weights), "
                              f"got {self.max_epochs}")
        if not self.limit_train_batches > 0:
            raise ConfigError(f"limit_train_batches must be a fraction in (0, 1] or a count >= 1, "
                              f"got {self.limit_train_batches}")
        for name in ("batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name.replace('_', ' ')} must be at least 1, got {value}")
        if self.patience < 0 or (self.max_minutes is not None and not self.max_minutes > 0):
            raise ConfigError(f"patience must be >= 0 and max minutes positive, got {self.patience}, {self.max_minutes}")
        out = Path(self.out)
        if out.exists() and not out.is_dir():
            raise ConfigError(f"{out}: exists and is not a folder; give --out a folder for the run")
        _lightning_precision(self.precision)


def _protocol_for(config: RunConfig) -> ProtocolConfig:
    model_config = build_config(config.model, config.model_options)
    return ProtocolConfig(
        channel=config.channel,
        steps=config.steps,
        scaling=config.scaling,
        daily_context=int(getattr(model_config, "daily_context", 0)),
        weekly_context=int(getattr(model_config, "weekly_context", 0)),
    )


def _lightning_precision(precision: str) -> str:
    choices = {"32": "32-true", "bf16": "bf16-mixed", "16": "16-mixed"}
    if precision not in choices:
        raise ConfigError(f"unknown precision {precision!r}; choose one of {', '.join(choices)}")
    return choices[precision]


def parameter_counts(model: torch.nn.Module) -> dict[str, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return {"trainable": trainable, "frozen": frozen}


def _model_description(model: Forecaster) -> dict[str, Any]:
    """Backbone and weights the model really used, so random-init results are named so."""
    description: dict[str, Any] = {"parameters": parameter_counts(model)}
    backbone = getattr(model, "backbone", None)
    if backbone is not None and hasattr(backbone, "weights"):
        description["backbone"] = backbone.name
        description["weights"] = backbone.weights.to_dict()
    label = getattr(model, "weights_label", None)
    if label:
        description["weights"] = {"label": label}
    variant = getattr(getattr(model, "config", None), "variant", None)
    if variant:
        description["variant"] = variant
    return description


def data_record(data: PreparedData) -> dict[str, Any]:
    """What ``predict`` needs to rebuild the model and de-scale without the training data."""
    return {
        "shape": asdict(data.forecast_shape),
        "scaler": data.scaler.to_dict(),
        "interval_minutes": data.series.interval_minutes,
        "channel_names": list(data.series.channel_names),
    }


def _metrics_payload(config: RunConfig, data: PreparedData, model: Forecaster, results: dict[str, Any],
                     split: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "dataset": data.series.name,
        "channel": config.channel,
        "split": split,
        "model": config.model,
        "mae": results["mae"],
        "rmse": results["rmse"],
        "per_horizon": results["per_horizon"],
        "n_windows": results["n_windows"],
        "n_points": results["n_points"],
        "seed": config.seed,
        "scaling": data.scaler.to_dict() | {"fit_on": config.scaling},
        **_model_description(model),
        **extra,
        "settings": config.to_dict(),
    }


def _save_predictions(path: Path, data: PreparedData, task: ForecastTask) -> None:
    """Test forecasts and truths in original units, for plots and metric re-computation."""
    predictions, targets, starts = task.collected_predictions()
    history = data.protocol.history
    first_step = data.series.timestamps[starts + history]
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, prediction=predictions, target=targets, start=starts,
                                first_step_time=first_step.astype("datetime64[s]").astype(str),
                                channel_names=np.array(data.series.channel_names))


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO through the project's atomic writes: a checkpoint is written beside
    its target and renamed over it, so a kill or a full disk never leaves a torn ``best``/``last.ckpt``
    (Lightning's own writer copies a temporary file in place when it sits on another file system)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any = None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


def _trainer(config: RunConfig, out: Path, callbacks: list, max_epochs: int, log: bool = True) -> L.Trainer:
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    loggers: list = [CSVLogger(str(out), name="logs", version="")] if log else []
    try:
        import tensorboard  # noqa: F401

        if log:
            loggers.append(TensorBoardLogger(str(out), name="logs", version="", default_hp_metric=False))
    except ImportError:
        pass
    try:
        trainer = L.Trainer(
            max_epochs=max_epochs,
            max_time={"minutes": config.max_minutes} if config.max_minutes else None,
            accelerator=config.accelerator,
            devices=config.devices,
            num_nodes=config.num_nodes,
            strategy=config.strategy,
            precision=_lightning_precision(config.precision),
            gradient_clip_val=config.optim.grad_clip or None,
            limit_train_batches=config.limit_train_batches,
            callbacks=callbacks,
            logger=loggers or False,
            enable_progress_bar=config.progress,
            enable_model_summary=False,
            deterministic=False,
            default_root_dir=str(out),
            log_every_n_steps=10,
            plugins=[AtomicCheckpointIO()],
        )
    except (MisconfigurationException, ValueError, RuntimeError) as error:  # e.g. --accelerator gpu without one
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ConfigError(f"accelerator {config.accelerator!r}, devices {config.devices!r}, strategy "
                          f"{config.strategy!r}: {reason[:240]}") from None
    if _on_cuda(trainer):
        torch.set_float32_matmul_precision("high")  # TF32 for fp32 matmuls: the GPU's fast path
    return trainer


def _on_cuda(trainer: L.Trainer) -> bool:
    from lightning.pytorch.accelerators import CUDAAccelerator

    return isinstance(trainer.accelerator, CUDAAccelerator)


def _data_module(data: PreparedData, config: RunConfig, trainer: L.Trainer) -> GridDataModule:
    """Loaders for the trainer's device: pinned host memory when batches go to a CUDA GPU."""
    return GridDataModule(data, batch_size=config.batch_size, eval_batch_size=config.eval_batch_size,
                          num_workers=config.num_workers, seed=config.seed, pin_memory=_on_cuda(trainer))


def fit(config: RunConfig, overwrite: bool = False, callbacks: list | None = None) -> dict[str, Any]:
    """Train (or, for classical models, fit) and test once at the best validation checkpoint.

    Everything is checked before the first write; a folder holding another run is refused
    (``overwrite`` clears it first). Until the run finishes, the folder is marked in progress
    and keeps the metrics of the run it extends, if any. ``callbacks``: extra Lightning callbacks
    for training (timing, trial pruning); they do not change the result.
    """
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    config = dataclasses.replace(config, model_options=resolved_options(config.model, config.model_options))
    config.validate()
    out = Path(config.out)
    L.seed_everything(config.seed, workers=True, verbose=False)
    data = prepare_data(config.dataset, _protocol_for(config), root=config.data_root)
    model = create_model(config.model, data.forecast_shape, **config.model_options)
    if config.init_from:
        _start_from(model, config)
    _speed_up(model, config)
    task = ForecastTask(model, data.scaler.inverse_transform, config.optim, run_config=config.to_dict(),
                        data_record=data_record(data))
    started = time.perf_counter()
    extra: dict[str, Any] = {}
    logged_before: list[dict[str, str]] = []
    if not model.trainable:
        trainer = _trainer(config, out, callbacks=[], max_epochs=0)
        module = _data_module(data, config, trainer)
        _accept_folder(config, out, overwrite)
        model.fit_series(data.values, data.time_features, data.splits["train"][1])
        extra["fit_seconds"] = time.perf_counter() - started
        results = _test(trainer, task, module, ckpt_path=None)
    else:
        checkpoints = ModelCheckpoint(dirpath=str(out / "checkpoints"), filename="best", monitor=SELECTION_METRIC,
                                      mode="min", save_last=True, save_top_k=1)
        stopper = EarlyStopping(monitor=SELECTION_METRIC, mode="min", patience=config.patience)
        trainer = _trainer(config, out, callbacks=[checkpoints, stopper, *(callbacks or [])], max_epochs=config.max_epochs)
        module = _data_module(data, config, trainer)
        ckpt_last = out / "checkpoints" / "last.ckpt"
        resumed_epoch = _accept_folder(config, out, overwrite)
        resume = str(ckpt_last) if resumed_epoch is not None else None
        if resume is None:  # afresh: Lightning would keep an earlier run's best and write best-v1.ckpt beside it
            for stale in (out / "checkpoints").glob("best*.ckpt"):
                stale.unlink(missing_ok=True)
        # Lightning's CSVLogger deletes logs/metrics.csv when it starts: keep the epochs a resumed run does not redo
        logged_before = _logged_rows(out / "logs" / "metrics.csv", before_epoch=resumed_epoch + 1) if resume else []
        trainer.fit(task, datamodule=module, ckpt_path=resume)
        train_seconds = time.perf_counter() - started
        epochs, best_val_score = _training_record(trainer, checkpoints, ckpt_last)
        extra.update(epochs=epochs, train_seconds=train_seconds,
                     seconds_per_epoch=train_seconds / max(1, epochs),
                     selection_metric=SELECTION_METRIC, best_val_score=best_val_score,
                     stop_reason=stop_reason(epochs, config.max_epochs, train_seconds, config.max_minutes,
                                             early_stopped=stopper.stopped_epoch > 0),
                     checkpoint=checkpoints.best_model_path or None)  # None: stopped before any validation
        if trainer.world_size > 1:
            # Under DDP the test windows would be split across ranks (padded with duplicates), and with
            # ddp_spawn the results would stay in the workers: test once, on one device, in this process.
            if not trainer.is_global_zero:
                return {}
            single = dataclasses.replace(config, devices=1, num_nodes=1, strategy="auto")
            # no loggers: a new CSVLogger would delete the training epochs' logs/metrics.csv
            trainer = _trainer(single, out, callbacks=[], max_epochs=0, log=False)
            task.test_metrics = ForecastMetrics(task.inverse, model.shape.horizon, sync_on_compute=False)
        results = _test(trainer, task, module, ckpt_path=checkpoints.best_model_path or None)
    extra.update(wall_seconds=time.perf_counter() - started, threads=torch.get_num_threads(), machine=machine())
    if trainer.is_global_zero:
        _prepend_rows(out / "logs" / "metrics.csv", logged_before)
        _save_predictions(out / "predictions.npz", data, task)
        payload = _metrics_payload(config, data, model, results, "test", extra)
        write_json_atomic(out / "metrics.json", payload)
        (out / IN_PROGRESS_NAME).unlink(missing_ok=True)
        ledger = ledger_root()
        if ledger is not None:  # the run is complete now: its record may be written
            payload["ledger_record"] = str(add_to_ledger([out], ledger)[0])
        return payload
    return {}


def _recorded_runs(out: Path) -> list[tuple[Path, RunConfig]]:
    """The runs the folder's records describe: its config.yaml, metrics.json and last.ckpt."""
    import json

    records = []
    for path in (out / "config.yaml", out / "metrics.json"):
        if path.is_file():
            try:
                text = path.read_text()
                payload = yaml.safe_load(text) if path.suffix == ".yaml" else json.loads(text).get("settings")
            except (ValueError, yaml.YAMLError, AttributeError):
                payload = None
            if not isinstance(payload, dict):
                raise ConfigError(f"{path}: not a run record; use another --out, or --overwrite to clear the folder")
            records.append((path, RunConfig.from_record(payload, path)))
    last = out / "checkpoints" / "last.ckpt"
    if last.exists():
        try:
            saved = load_checkpoint(last)
        except CheckpointError as error:
            raise CheckpointError(f"{error}; delete it to start afresh, or pass --overwrite to clear the folder") from None
        records.append((last, RunConfig.from_record(saved["stvfm"]["run"], last)))
    return records


def _accept_folder(config: RunConfig, out: Path, overwrite: bool) -> int | None:
    """Claim ``out`` for this run; the epoch ``last.ckpt`` holds when the run resumes from it, else None.

    A folder whose records describe another run is refused before anything in it changes.
    """
    from lightning.pytorch.utilities import rank_zero_only

    if overwrite:
        clear_run(out)
    records = _recorded_runs(out)
    for path, recorded in records:
        differing = config.identity_differences(recorded)
        if differing:
            raise ConfigError(f"{path}: left by another run (differs in {', '.join(differing)}); "
                              "use another --out, or --overwrite to clear the folder first")
    last = out / "checkpoints" / "last.ckpt"
    resumed = int(load_checkpoint(last).get("epoch", -1)) if last.exists() else None
    if rank_zero_only.rank != 0:  # under DDP the launching process writes the folder
        return resumed
    for stray in out.rglob(".*.tmp"):  # temporaries of writes killed before their rename
        stray.unlink(missing_ok=True)
    write_text_atomic(out / IN_PROGRESS_NAME, f"started {time.strftime('%Y-%m-%dT%H:%M:%S')} by pid {os.getpid()}\n")
    write_text_atomic(out / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
    return resumed


def _logged_rows(path: Path, before_epoch: int) -> list[dict[str, str]]:
    """The rows of a CSV log from epochs before ``before_epoch``."""
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return [row for row in csv.DictReader(handle) if (row.get("epoch") or "x").isdigit()
                and int(row["epoch"]) < before_epoch]


def _prepend_rows(path: Path, rows: list[dict[str, str]]) -> None:
    if not rows:
        return
    current: list[dict[str, str]] = []
    if path.is_file():
        with open(path, newline="") as handle:
            current = list(csv.DictReader(handle))
    fields = sorted({key for row in rows + current for key in row if key is not None})
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows + current)


def _training_record(trainer: L.Trainer, checkpoints, last: Path) -> tuple[int, float | None]:
    """(epochs trained, best validation loss); under ddp_spawn this process did not train, so read last.ckpt."""
    epochs = int(trainer.current_epoch)
    best = checkpoints.best_model_score
    if (best is None or epochs == 0) and last.exists():
        saved = load_checkpoint(last)
        epochs = max(epochs, int(saved.get("epoch", -1)) + 1)
        for state in saved.get("callbacks", {}).values():
            if best is None and isinstance(state, dict) and state.get("monitor") == SELECTION_METRIC:
                best = state.get("best_model_score")
    return epochs, float(best) if best is not None else None


def _test(trainer: L.Trainer, task: ForecastTask, module: GridDataModule, ckpt_path: str | None) -> dict[str, Any]:
    task.collect_predictions = True
    trainer.test(task, datamodule=module, ckpt_path=ckpt_path, verbose=False)
    return task.test_results


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint without executing pickled code, its structure checked; a bad file is a one-line error."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a regular file (a folder, pipe or device)")
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


def restore(checkpoint_path: str | os.PathLike, dataset: str | None = None,
            overrides: dict[str, Any] | None = None) -> tuple[RunConfig, PreparedData, Forecaster]:
    """Rebuild the data and model a checkpoint was trained with and load its weights."""
    checkpoint = load_checkpoint(checkpoint_path)
    config = RunConfig.from_record(checkpoint["stvfm"]["run"], checkpoint_path)
    if dataset:
        config.dataset = dataset
    for key, value in (overrides or {}).items():
        setattr(config, key, value)
    data = prepare_data(config.dataset, _protocol_for(config), root=config.data_root)
    model = build_checkpoint_model(checkpoint_path, config, data.forecast_shape)
    load_model_weights(model, checkpoint, checkpoint_path)
    return config, data, model


def _speed_up(model: Forecaster, config: RunConfig) -> None:
    """Under bf16, frozen layers are stored in bf16 once (autocast would cast them at every step anyway)."""
    if config.precision == "bf16":
        cast_frozen_linears(model, torch.bfloat16)
    if config.compile_backbone:
        compile_backbone(model)


def _start_from(model: Forecaster, config: RunConfig) -> None:
    """Fine-tuning: this run's model starts from another run's weights (same model, same grid)."""
    checkpoint = load_checkpoint(config.init_from)
    trained = checkpoint["stvfm"]["run"].get("model")
    if trained != config.model:
        raise CheckpointError(f"{config.init_from}: holds model {trained!r}, this run trains {config.model!r}")
    load_model_weights(model, checkpoint, config.init_from)


def load_model_weights(model: Forecaster, checkpoint: dict[str, Any], path: str | os.PathLike) -> None:
    state = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise CheckpointError(f"{path}: weights do not fit model {type(model).__name__} ({first[:200]})") from None


def evaluate_checkpoint(checkpoint_path: str | os.PathLike, out: str | os.PathLike, dataset: str | None = None,
         data_root: str | None = None, precision: str | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Re-evaluate a saved checkpoint on the test split, writing the same metrics.json as fit."""
    overrides: dict[str, Any] = {"out": str(out)}
    if data_root:
        overrides["data_root"] = data_root
    if precision:
        overrides["precision"] = precision
    config, data, model = restore(checkpoint_path, dataset, overrides)
    config.validate()
    _speed_up(model, config)
    out = Path(out)
    task = ForecastTask(model, data.scaler.inverse_transform, config.optim, run_config=config.to_dict(),
                        data_record=data_record(data))
    config.devices, config.num_nodes, config.strategy = 1, 1, "auto"
    trainer = _trainer(config, out, callbacks=[], max_epochs=0)
    module = _data_module(data, config, trainer)
    _accept_folder(config, out, overwrite)
    results = _test(trainer, task, module, ckpt_path=None)
    _save_predictions(out / "predictions.npz", data, task)
    payload = _metrics_payload(config, data, model, results, "test", {"checkpoint": str(checkpoint_path)})
    write_json_atomic(out / "metrics.json", payload)
    (out / IN_PROGRESS_NAME).unlink(missing_ok=True)
    return payload
