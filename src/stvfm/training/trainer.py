"""The Lightning trainer, loaders and selection callbacks every training (fit, pretrain) and test uses."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Timer

from stvfm.data.datamodule import GridDataModule
from stvfm.data.prepared import PreparedData
from stvfm.errors import ConfigError
from stvfm.training.checkpoints import AtomicCheckpointIO
from stvfm.training.config import RunConfig, lightning_precision
from stvfm.training.settings import OptimConfig

#: What early stopping and the best checkpoint watch, for every model and variant: the validation
#: MSE of the forecast itself (scaled units), never a loss with an auxiliary term such as ST-VFM's flow.
SELECTION_METRIC = "val/mse_st"


class SittingTimer(Timer):
    """``--max-minutes`` caps one sitting. Lightning's own timer restores the time a checkpoint had
    spent, so a run resumed after a time-capped sitting stopped at once (and its record read as if
    it had converged); the compute of every sitting is kept by ``SittingLog`` instead."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """A sitting's clock starts at zero, whatever the checkpoint's timer had spent."""


def sitting_timer(max_minutes: float | None) -> list[Timer]:
    """The time cap of this sitting, checked after every step as Lightning's ``max_time`` is."""
    return [SittingTimer(duration=timedelta(minutes=max_minutes), interval="step")] if max_minutes else []


def build_trainer(config: RunConfig, out: Path, callbacks: list, max_epochs: int, log: bool = True) -> L.Trainer:
    """A trainer for ``config``'s devices and precision, logging to ``out/logs``, checkpoints written atomically."""
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
            accelerator=config.accelerator,
            devices=config.devices,
            num_nodes=config.num_nodes,
            strategy=config.strategy,
            precision=lightning_precision(config.precision),
            gradient_clip_val=config.optim.grad_clip or None,
            limit_train_batches=config.limit_train_batches,
            callbacks=[*callbacks, *sitting_timer(config.max_minutes)],
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
    if on_cuda(trainer):
        torch.set_float32_matmul_precision("high")  # TF32 for fp32 matmuls: the GPU's fast path
    return trainer


def on_cuda(trainer: L.Trainer) -> bool:
    """Whether the trainer runs on a CUDA GPU (TF32 matmuls, pinned loader memory)."""
    from lightning.pytorch.accelerators import CUDAAccelerator

    return isinstance(trainer.accelerator, CUDAAccelerator)


def data_module(data: PreparedData, config: RunConfig, trainer: L.Trainer) -> GridDataModule:
    """Loaders for the trainer's device: pinned host memory when batches go to a CUDA GPU."""
    return GridDataModule(data, batch_size=config.batch_size, eval_batch_size=config.eval_batch_size,
                          num_workers=config.num_workers, seed=config.seed, pin_memory=on_cuda(trainer))


def weight_averaging(optim: OptimConfig) -> list:
    """Lightning's EMA callback when the recipe asks for one: validation, both checkpoints' weights
    and so the test all use the average, while training continues from the raw weights (kept in
    the checkpoint beside it, so a resume restores both)."""
    if not optim.ema_decay:
        return []
    from lightning.pytorch.callbacks import EMAWeightAveraging

    return [EMAWeightAveraging(decay=optim.ema_decay)]


def end_weight_averaging(trainer: L.Trainer) -> None:
    """After fit: the EMA callback would load a checkpoint's raw weights over its average when the
    test restores ``best.ckpt``; the test must see the average, which is the checkpoint's ``state_dict``."""
    from lightning.pytorch.callbacks import WeightAveraging

    trainer.callbacks = [callback for callback in trainer.callbacks if not isinstance(callback, WeightAveraging)]


def selection_callbacks(out: Path, monitor: str, patience: int) -> tuple:
    """(best checkpoint, early stopping, every callback to give the trainer), all on ``monitor`` (lower
    is better). ``best.ckpt`` follows ``monitor``; ``last.ckpt``, the point a run resumes from, is
    rewritten after every epoch by a callback of its own (Lightning 2.6's ``save_last`` writes it only
    in epochs that improve ``best``, so a resume would redo the others)."""
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    folder = str(out / "checkpoints")
    best = ModelCheckpoint(dirpath=folder, filename="best", monitor=monitor, mode="min", save_top_k=1)
    latest = ModelCheckpoint(dirpath=folder, filename="last", save_top_k=1, enable_version_counter=False)
    stopper = EarlyStopping(monitor=monitor, mode="min", patience=patience)
    return best, stopper, [best, latest, stopper]


def timed_out(trainer: L.Trainer) -> bool | None:
    """Whether ``max_time`` ended training; None where this process's timer did not run it (ddp_spawn)."""
    timer = next((callback for callback in trainer.callbacks if isinstance(callback, Timer)), None)
    if timer is None:
        return False
    if timer.start_time("train") is None:
        return None
    remaining = timer.time_remaining("train")
    return remaining is not None and remaining <= 0
