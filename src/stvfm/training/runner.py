"""Fit, evaluate and test runs: the library behind ``stvfm fit / evaluate / test``.

A run is described by one typed ``RunConfig`` (``training.config``), resolved once and saved
beside its outputs (``config.yaml``), so every reported metric can be re-run from what sits
next to it. Classical models are fitted in closed form, learned ones trained by Lightning;
both end in the same test-and-write step (``training.results``).
"""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch

from stvfm import host
from stvfm.data.prepared import PreparedData, prepare_data
from stvfm.errors import ConfigError
from stvfm.models.base import Forecaster
from stvfm.models.registry import create_model, get_model_entry, resolved_options
from stvfm.training import results
from stvfm.training.checkpoints import load_checkpoint, restore, start_from
from stvfm.training.claim import (
    accept_folder,
    keep_earlier_rows,
    refuse_trained_run,
    release_folder,
    restore_earlier_rows,
)
from stvfm.training.config import RunConfig, native_precision, protocol_for
from stvfm.training.folders import LAST_CHECKPOINT
from stvfm.training.metrics import ForecastMetrics
from stvfm.training.results import data_record
from stvfm.training.sittings import SittingLog
from stvfm.training.sittings import summary as sitting_summary
from stvfm.training.speed import cast_frozen_linears, compile_backbone
from stvfm.training.stopping import stop_reason
from stvfm.training.task import ForecastTask
from stvfm.training.trainer import (
    SELECTION_METRIC,
    build_trainer,
    data_module,
    end_weight_averaging,
    selection_callbacks,
    timed_out,
    weight_averaging,
)

#: Called with (run folder, metrics payload) once a run's outputs are written and the folder is marked
#: finished, on the one process that writes it; it may add keys to the payload ``fit`` returns. The
#: layers above training pass one to record the run (``stvfm.ledger.record_finished``).
Finished = Callable[[Path, dict[str, Any]], None]


def fit(config: RunConfig, overwrite: bool = False, callbacks: list | None = None,
        finished: Finished | None = None) -> dict[str, Any]:
    """Train (or, for classical models, fit) and test once at the best validation checkpoint.

    Everything is checked before the first write; a folder holding another run is refused
    (``overwrite`` clears it first). Until the run finishes, the folder is marked in progress
    and keeps the metrics of the run it extends, if any. ``callbacks``: extra Lightning callbacks
    for training (timing, trial pruning); they do not change the result. ``finished``: what to do
    with the finished run (record it in a ledger).
    """
    config = dataclasses.replace(config, model_options=resolved_options(config.model, config.model_options))
    config.validate()
    L.seed_everything(config.seed, workers=True, verbose=False)
    data = prepare_data(config.dataset, protocol_for(config), root=config.data_root)
    config.data_sha256 = data.series.sha256()
    model = create_model(config.model, data.forecast_shape, **config.model_options)
    if config.init_from:
        start_from(model, config)
    _speed_up(model, config)
    task = ForecastTask(model, data.scaler.inverse_transform, config.optim, run_config=config.to_dict(),
                        data_record=data_record(data))
    try:
        if model.trainable:
            payload = _train(config, data, task, overwrite, callbacks or [])
        else:
            payload = _fit_classical(config, data, task, overwrite)
        if payload and finished is not None:  # {} on the ranks that do not write the folder
            finished(Path(config.out), payload)
        return payload
    finally:
        release_folder(Path(config.out))


def evaluate(config: RunConfig, overwrite: bool = False, finished: Finished | None = None) -> dict[str, Any]:
    """``stvfm evaluate``: fit a classical baseline on the training split and test it; a learned model is
    refused, since it would train (that is ``fit``)."""
    if get_model_entry(config.model).cls.trainable:
        raise ConfigError(f"model {config.model!r} is learned: use `stvfm fit --model {config.model}`")
    return fit(config, overwrite=overwrite, finished=finished)


def _fit_classical(config: RunConfig, data: PreparedData, task: ForecastTask, overwrite: bool) -> dict[str, Any]:
    """Closed-form models: fit on the training split, then test."""
    started = time.perf_counter()
    trainer = build_trainer(config, Path(config.out), callbacks=[], max_epochs=0)
    module = data_module(data, config, trainer)
    accept_folder(config, Path(config.out), overwrite)
    task.model.fit_series(data.scaled_with_gaps(), data.time_features, data.splits["train"][1])
    extra = {"fit_seconds": time.perf_counter() - started, "fitted_by": task.model.fitted_by}
    # scored on validation as the learned models are, so a classical model's options are chosen there too
    validated = trainer.validate(task, datamodule=module, verbose=False)
    if validated:
        scores = validated[0]
        extra.update(selection_metric=SELECTION_METRIC, best_val_score=float(scores[SELECTION_METRIC]),
                     val={"rmse": float(scores["val/rmse"]), "mae": float(scores["val/mae"])})
    return _finish(trainer, task, module, None, config, data, extra, started)


def _train(config: RunConfig, data: PreparedData, task: ForecastTask, overwrite: bool,
           callbacks: list) -> dict[str, Any]:
    """Learned models: train with early stopping on the selection metric (resuming the folder's own
    run from ``last.ckpt``), then test at the best checkpoint."""
    started = time.perf_counter()
    out = Path(config.out)
    checkpoints, stopper, selection = selection_callbacks(out, SELECTION_METRIC, config.patience)
    ckpt_last = out / LAST_CHECKPOINT
    sittings = SittingLog(out, resumed=ckpt_last.exists() and not overwrite, precision=config.precision)
    trainer = build_trainer(config, out, callbacks=[*selection, *weight_averaging(config.optim), sittings, *callbacks],
                            max_epochs=config.max_epochs)
    module = data_module(data, config, trainer)
    resumed_epoch = accept_folder(config, out, overwrite)
    resume = str(ckpt_last) if resumed_epoch is not None else None
    if resume is None:  # afresh: Lightning would keep an earlier run's best and write best-v1.ckpt beside it
        for stale in (out / "checkpoints").glob("best*.ckpt"):
            stale.unlink(missing_ok=True)
    if trainer.is_global_zero:  # the logged epochs a resumed run does not redo, kept where a kill cannot reach them
        keep_earlier_rows(out / "logs", resumed_epoch)
    trainer.fit(task, datamodule=module, ckpt_path=resume)
    end_weight_averaging(trainer)
    train_seconds = time.perf_counter() - started
    epochs, best_val_score = _training_record(trainer, checkpoints, ckpt_last)
    compute = sitting_summary(sittings.sittings)
    extra = dict(epochs=epochs, train_seconds=train_seconds, **compute,
                 seconds_per_epoch=compute["total_train_seconds"] / max(1, epochs),
                 # optimizer steps and the batches of one whole epoch: a budget readers can say in words
                 train_steps=int(trainer.global_step), batches_per_epoch=len(module.train_dataloader()),
                 selection_metric=SELECTION_METRIC, best_val_score=best_val_score,
                 stop_reason=stop_reason(epochs, config.max_epochs, train_seconds, config.max_minutes,
                                         early_stopped=stopper.stopped_epoch > 0, timed_out=timed_out(trainer)),
                 checkpoint=checkpoints.best_model_path or None)  # None: stopped before any validation
    if trainer.world_size > 1:
        # Under DDP the test windows would be split across ranks (padded with duplicates), and with
        # ddp_spawn the results would stay in the workers: test once, on one device, in this process.
        if not trainer.is_global_zero:
            return {}
        single = dataclasses.replace(config, devices=1, num_nodes=1, strategy="auto")
        # no loggers: a new CSVLogger would delete the training epochs' logs/metrics.csv
        trainer = build_trainer(single, out, callbacks=[], max_epochs=0, log=False)
        task.test_metrics = ForecastMetrics(task.inverse, task.model.shape.horizon, sync_on_compute=False)
    return _finish(trainer, task, module, checkpoints.best_model_path or None, config, data, extra, started)


def _finish(trainer: L.Trainer, task: ForecastTask, module, ckpt_path: str | None, config: RunConfig,
            data: PreparedData, extra: dict[str, Any], started: float) -> dict[str, Any]:
    """The step both paths end in: test, then (on the process that writes the folder) put back the
    epoch logs a resume kept and write the outputs; the metrics payload, {} on other ranks."""
    test_results = results.run_test(trainer, task, module, ckpt_path)
    extra.update(wall_seconds=time.perf_counter() - started, threads=torch.get_num_threads(), machine=host.describe())
    if not trainer.is_global_zero:
        return {}
    restore_earlier_rows(Path(config.out) / "logs")
    return results.write_outputs(config, data, task, test_results, extra)


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


def _speed_up(model: Forecaster, config: RunConfig) -> None:
    """Under bf16, frozen layers are stored in bf16 once (autocast would cast them at every step anyway)."""
    if config.precision == "bf16":
        if model.trainable and native_precision(config.accelerator) != "bf16":
            warnings.warn("bf16 asked for on a device without native bf16 arithmetic (a CPU without AVX512-BF16 "
                          "or AMX, a GPU before Ampere): it is emulated, many times slower than fp32; "
                          "--precision auto chooses fp32 here", stacklevel=2)
        cast_frozen_linears(model, torch.bfloat16)
    if config.compile_backbone:
        compile_backbone(model)


def evaluate_checkpoint(checkpoint_path: str | os.PathLike, out: str | os.PathLike, dataset: str | None = None,
         data_root: str | None = None, precision: str | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Re-evaluate a saved checkpoint on the test split, writing the same metrics.json as fit."""
    overrides: dict[str, Any] = {"out": str(out)}
    if data_root:
        overrides["data_root"] = data_root
    if precision:
        overrides["precision"] = precision
    config, data, model = restore(checkpoint_path, dataset, overrides)
    return evaluate_model(config, data, model, {"checkpoint": str(checkpoint_path)}, overwrite)


def evaluate_model(config: RunConfig, data: PreparedData, model: Forecaster, source: dict[str, str],
               overwrite: bool = False) -> dict[str, Any]:
    """Test a rebuilt model (from a checkpoint or an export) on ``data``'s test split into ``config.out``,
    writing the same outputs as fit, ``source`` among them."""
    config.data_sha256 = data.series.sha256()
    config.validate()
    out = Path(config.out)
    for kind, read_from in source.items():  # the checkpoint or export under test
        refuse_trained_run(out, read_from, kind)
    _speed_up(model, config)
    task = ForecastTask(model, data.scaler.inverse_transform, config.optim, run_config=config.to_dict(),
                        data_record=data_record(data))
    config.devices, config.num_nodes, config.strategy = 1, 1, "auto"
    trainer = build_trainer(config, out, callbacks=[], max_epochs=0)
    module = data_module(data, config, trainer)
    try:
        accept_folder(config, out, overwrite)
        test_results = results.run_test(trainer, task, module, ckpt_path=None)
        return results.write_outputs(config, data, task, test_results, dict(source))
    finally:
        release_folder(out)
