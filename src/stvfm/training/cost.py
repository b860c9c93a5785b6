"""What a run will cost before it is spent: its FLOPs per epoch and in all (counted from its settings, the
same on any host), and on this host the seconds a training batch and a validation pass take through the
real training path, so the hours a recipe needs at most are known before they are spent.

The batches are timed inside ``runner.fit`` (loader, optimiser step, precision and logging included) on a
throw-away folder, between the ends of consecutive batches after a few untimed ones, and the validation
pass whole; the matmul peak at
the run's precision is measured in the same call, so the achieved rate is read as a fraction of it.
Backbone weights are replaced by random ones of the same architecture: the cost is the architecture's.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from stvfm import host
from stvfm.data.datamodule import default_batch_size
from stvfm.data.prepared import prepare_data
from stvfm.errors import ConfigError
from stvfm.models.registry import build_config, get_model_entry
from stvfm.training.benchmark import BenchmarkConfig, matmul_peak_tflops
from stvfm.training.config import RunConfig, device_type, precision_label, protocol_for
from stvfm.training.flops import epoch_flops
from stvfm.training.runner import fit

#: Torch dtype of each precision's matmul peak.
_PEAK_DTYPE = {"bf16": torch.bfloat16, "16": torch.float16, "32": torch.float32}


class BatchClock(Callback):
    """Seconds between the ends of consecutive training batches of the first epoch, the first ``warmup``
    left out (what a batch costs once the run is under way), and the seconds of its whole validation pass."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.train_ends: list[float] = []
        self.validation: list[float] = []  # start and end of the first real validation pass

    @staticmethod
    def _now(module: L.LightningModule) -> float:
        if module.device.type == "cuda":  # kernels run ahead of Python: wait for them
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs, batch, batch_idx) -> None:
        self.train_ends.append(self._now(module))

    def on_validation_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.sanity_checking and not self.validation:
            self.validation.append(self._now(module))

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.sanity_checking and len(self.validation) == 1:
            self.validation.append(self._now(module))

    def train_batch_seconds(self) -> float:
        ends = self.train_ends[self.warmup:]
        return statistics.fmean(later - earlier for earlier, later in zip(ends, ends[1:], strict=False))

    def validation_seconds(self) -> float:
        start, end = self.validation
        return end - start


@dataclass(frozen=True)
class RunCost:
    model: str
    dataset: str
    precision: str  # "fp32", "bf16": what the run would compute in here
    threads: int
    vector_units: str  # torch's CPU capability: AVX2 and AVX512 hosts differ 2-4x per core
    load_15min: float | None  # above the threads, the cores were shared while timing
    batch_size: int
    train_windows: int
    val_windows: int
    train_batches: int  # per epoch
    max_epochs: int
    patience: int | None
    train_gflop_per_window: float  # forward, loss and backward
    val_gflop_per_window: float
    train_batch_seconds: float  # measured here, a whole batch's (the epoch's last, partial one is counted as whole)
    validation_seconds: float  # one whole validation pass, measured here
    peak_tflops: float  # matmul peak at the run's precision, measured in the same call

    @property
    def epoch_tflop(self) -> float:
        return (self.train_gflop_per_window * self.train_windows + self.val_gflop_per_window * self.val_windows) / 1e3

    @property
    def total_pflop(self) -> float:
        """Work of every epoch the recipe allows; early stopping may end the run sooner."""
        return self.epoch_tflop * self.max_epochs / 1e3

    @property
    def epoch_seconds(self) -> float:
        return self.train_batches * self.train_batch_seconds + self.validation_seconds

    @property
    def hours_at_most(self) -> float:
        return self.epoch_seconds * self.max_epochs / 3600

    @property
    def achieved_tflops(self) -> float:
        """Training rate: a full batch's counted FLOPs over its measured seconds."""
        return self.train_gflop_per_window * self.batch_size / self.train_batch_seconds / 1e3

    @property
    def utilisation(self) -> float:
        return self.achieved_tflops / self.peak_tflops

    def as_dict(self) -> dict[str, Any]:
        derived = ("epoch_tflop", "total_pflop", "epoch_seconds", "hours_at_most", "achieved_tflops", "utilisation")
        return dataclasses.asdict(self) | {name: getattr(self, name) for name in derived}


def cost(config: RunConfig, timed_batches: int = 4, warmup_batches: int = 2) -> RunCost:
    """The cost of the run ``config`` describes (its folder is never touched): counted FLOPs, and
    ``timed_batches`` training batches timed here after ``warmup_batches`` untimed ones."""
    if timed_batches < 1 or warmup_batches < 0:
        raise ConfigError(f"timed batches must be >= 1 and warm-up batches >= 0, got {timed_batches} and {warmup_batches}")
    if not get_model_entry(config.model).cls.trainable:
        raise ConfigError(f"{config.model} is fitted in closed form, in seconds: `stvfm evaluate --model {config.model}` "
                          "costs nothing to plan")
    shape = prepare_data(config.dataset, protocol_for(config), root=config.data_root).forecast_shape
    batch_size = config.batch_size or default_batch_size(shape.height, shape.width)
    counted = epoch_flops(config.to_dict())  # its training windows are the run's (limit_train_batches applied)
    if counted.train_windows < batch_size * (warmup_batches + timed_batches + 1):
        raise ConfigError(f"{config.dataset}: {counted.train_windows} training windows are too few to time "
                          f"{timed_batches} batch(es) of {batch_size} after {warmup_batches} warm-up one(s)")
    options = dict(config.model_options)
    if "weights" in vars(build_config(config.model, {})):
        options["weights"] = "random"  # same architecture, no download, no load
    clock = BatchClock(warmup_batches)
    with tempfile.TemporaryDirectory(prefix="stvfm-cost-") as out:
        fit(dataclasses.replace(config, out=out, model_options=options, max_epochs=1, max_minutes=None,
                                limit_train_batches=warmup_batches + timed_batches + 1, progress=False),
            callbacks=[clock])
    machine = host.describe()
    return RunCost(
        model=config.model, dataset=config.dataset, precision=precision_label(config.precision),
        threads=torch.get_num_threads(), vector_units=machine["cpu_capability"], load_15min=machine["load_15min"],
        batch_size=batch_size, train_windows=counted.train_windows, val_windows=counted.val_windows,
        train_batches=-(-counted.train_windows // batch_size),
        max_epochs=config.max_epochs, patience=config.patience,
        train_gflop_per_window=counted.window.train / 1e9, val_gflop_per_window=counted.window.val / 1e9,
        train_batch_seconds=clock.train_batch_seconds(), validation_seconds=clock.validation_seconds(),
        peak_tflops=matmul_peak_tflops(_PEAK_DTYPE.get(config.precision, torch.float32), BenchmarkConfig(),
                                       device_type(config.accelerator)))
