"""Fit, test and evaluate runs: the library behind ``stvfm fit / test / evaluate``.

A run is described by one typed ``RunConfig``, resolved once and saved beside its outputs
(``config.yaml``), so every reported metric can be re-run from what sits next to it.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import yaml

from stvfm.atomic import atomic_path, write_json_atomic, write_text_atomic
from stvfm.data.datamodule import GridDataModule
from stvfm.data.prepared import PreparedData, prepare_data
from stvfm.data.windows import ProtocolConfig
from stvfm.errors import CheckpointError, ConfigError
from stvfm.ledger import add as add_to_ledger
from stvfm.ledger import ledger_root, machine, stop_reason
from stvfm.models.base import Forecaster
from stvfm.models.registry import build_config, create_model, recorded_options, resolved_options
from stvfm.training.metrics import ForecastMetrics
from stvfm.training.optim import OptimConfig
from stvfm.training.speed import cast_frozen_linears, compile_backbone
from stvfm.training.task import ForecastTask

#: What early stopping and the best checkpoint watch, for every model and variant: the validation
#: MSE of the forecast itself (scaled units), never a loss with an auxiliary term such as ST-VFM's flow.
SELECTION_METRIC = "val/mse_st"


@dataclass
class RunConfig:
    """Everything that decides a run's result."""

    model: str
    dataset: str
    out: str
    channel: int | None = 0
    steps: int | None = None  # None: the dataset's default period (taxinyc1: the paper's 60 days)
    scaling: str = "train"  # "train" (fit on the training split) or "all" (UniST's variant)
    model_options: dict[str, Any] = field(default_factory=dict)
    max_epochs: int = 200
    max_minutes: float | None = None  # wall-clock cap on training; the best checkpoint so far is tested
    patience: int = 20  # early-stopping patience in epochs on validation loss
    batch_size: int | None = None  # None: UniST's rule by grid size
    eval_batch_size: int | None = None
    limit_train_batches: float | int = 1.0  # a fraction or a count, for quick runs
    precision: str = "32"  # "32" or "bf16" (bf16 autocast, CPU or GPU)
    compile_backbone: bool = False  # torch.compile the frozen VFM (speed only; results unchanged)
    seed: int = 0
    init_from: str | None = None  # checkpoint of the same model and grid whose weights start this run (fine-tuning)
    optim: OptimConfig = field(default_factory=OptimConfig)
    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    num_workers: int = 0
    data_root: str | None = None
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"optim": self.optim.to_dict()}

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> "RunConfig":
        payload = dict(payload)
        payload["optim"] = OptimConfig(**payload.get("optim", {}))
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in payload.items() if k in known})


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


def _trainer(config: RunConfig, out: Path, callbacks: list, max_epochs: int, log: bool = True) -> L.Trainer:
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    loggers: list = [CSVLogger(str(out), name="logs", version="")] if log else []
    try:
        import tensorboard  # noqa: F401

        if log:
            loggers.append(TensorBoardLogger(str(out), name="logs", version="", default_hp_metric=False))
    except ImportError:
        pass
    return L.Trainer(
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
    )


def fit(config: RunConfig, callbacks: list | None = None) -> dict[str, Any]:
    """Train (or, for classical models, fit) and test once at the best validation checkpoint.

    ``callbacks``: extra Lightning callbacks for training (timing, trial pruning); they do not change the result.
    """
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    config = dataclasses.replace(config, model_options=resolved_options(config.model, config.model_options))
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    L.seed_everything(config.seed, workers=True, verbose=False)
    data = prepare_data(config.dataset, _protocol_for(config), root=config.data_root)
    model = create_model(config.model, data.forecast_shape, **config.model_options)
    if config.init_from:
        _start_from(model, config)
    _speed_up(model, config)
    write_text_atomic(out / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
    task = ForecastTask(model, data.scaler.inverse_transform, config.optim, run_config=config.to_dict(),
                        data_record=data_record(data))
    module = GridDataModule(data, batch_size=config.batch_size, eval_batch_size=config.eval_batch_size,
                            num_workers=config.num_workers, seed=config.seed)
    started = time.perf_counter()
    extra: dict[str, Any] = {}
    logged_before: list[dict[str, str]] = []
    if not model.trainable:
        model.fit_series(data.values, data.time_features, data.splits["train"][1])
        extra["fit_seconds"] = time.perf_counter() - started
        trainer = _trainer(config, out, callbacks=[], max_epochs=0)
        results = _test(trainer, task, module, ckpt_path=None)
    else:
        checkpoints = ModelCheckpoint(dirpath=str(out / "checkpoints"), filename="best", monitor=SELECTION_METRIC,
                                      mode="min", save_last=True, save_top_k=1)
        stopper = EarlyStopping(monitor=SELECTION_METRIC, mode="min", patience=config.patience)
        trainer = _trainer(config, out, callbacks=[checkpoints, stopper, *(callbacks or [])], max_epochs=config.max_epochs)
        ckpt_last = out / "checkpoints" / "last.ckpt"
        resume, resumed_epoch = _resume_from(config, ckpt_last)
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
        ledger = ledger_root()
        if ledger is not None:
            payload["ledger_record"] = str(add_to_ledger([out], ledger)[0])
        return payload
    return {}


#: Settings a resumed run must share with the run that left ``last.ckpt``.
RESUME_KEYS = ("model", "model_options", "channel", "steps", "scaling", "seed", "init_from")


def _resume_from(config: RunConfig, last: Path) -> tuple[str | None, int]:
    """``last.ckpt`` of an interrupted run of this configuration, checked before Lightning trusts it.

    Without one the run starts afresh, so best checkpoints left by an earlier run in the folder
    are removed (Lightning would otherwise keep them and write ``best-v1.ckpt`` beside them).
    """
    if not last.exists():
        for stale in last.parent.glob("best*.ckpt"):
            stale.unlink(missing_ok=True)
        return None, -1
    saved = load_checkpoint(last)  # a truncated or foreign file: CheckpointError naming it
    run = saved["stvfm"].get("run", {}) if isinstance(saved["stvfm"], dict) else {}
    current = config.to_dict()
    differing = [key for key in RESUME_KEYS if run.get(key) != current.get(key)]
    if differing:
        raise CheckpointError(f"{last}: left by a run with other settings ({', '.join(differing)}); "
                              "use another --out, or delete it to start afresh")
    return str(last), int(saved.get("epoch", -1))


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
    """Load a checkpoint without executing pickled code; a bad file is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for truncated or foreign files
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path}: not a readable stvfm checkpoint ({reason[:160]})") from None
    if not isinstance(checkpoint, dict) or "stvfm" not in checkpoint or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path}: not an stvfm checkpoint (no run config or weights inside)")
    return checkpoint


def restore(checkpoint_path: str | os.PathLike, dataset: str | None = None,
            overrides: dict[str, Any] | None = None) -> tuple[RunConfig, PreparedData, Forecaster]:
    """Rebuild the data and model a checkpoint was trained with and load its weights."""
    checkpoint = load_checkpoint(checkpoint_path)
    config = RunConfig.from_dict(checkpoint["stvfm"]["run"])
    if dataset:
        config.dataset = dataset
    for key, value in (overrides or {}).items():
        setattr(config, key, value)
    data = prepare_data(config.dataset, _protocol_for(config), root=config.data_root)
    config.model_options = recorded_options(config.model, config.model_options)
    model = create_model(config.model, data.forecast_shape, **config.model_options)
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
         data_root: str | None = None, precision: str | None = None) -> dict[str, Any]:
    """Re-evaluate a saved checkpoint on the test split, writing the same metrics.json as fit."""
    overrides: dict[str, Any] = {"out": str(out)}
    if data_root:
        overrides["data_root"] = data_root
    if precision:
        overrides["precision"] = precision
    config, data, model = restore(checkpoint_path, dataset, overrides)
    _speed_up(model, config)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    task = ForecastTask(model, data.scaler.inverse_transform, config.optim, run_config=config.to_dict(),
                        data_record=data_record(data))
    module = GridDataModule(data, batch_size=config.batch_size, eval_batch_size=config.eval_batch_size,
                            num_workers=config.num_workers, seed=config.seed)
    config.devices, config.num_nodes, config.strategy = 1, 1, "auto"
    trainer = _trainer(config, out, callbacks=[], max_epochs=0)
    results = _test(trainer, task, module, ckpt_path=None)
    _save_predictions(out / "predictions.npz", data, task)
    payload = _metrics_payload(config, data, model, results, "test", {"checkpoint": str(checkpoint_path)})
    write_json_atomic(out / "metrics.json", payload)
    return payload
