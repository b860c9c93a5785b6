"""Pre-training one model on several datasets at once, as UniST does, for fine-tuning with ``fit --init-from``.

Every training step draws one batch from each dataset (each on its own grid, scaled by its
own training split) and minimises the mean of the per-dataset losses; validation loss is the
mean over datasets. One set of weights serves every grid through shallow "views" of the
model that share all parameters and differ only in the ``ForecastShape`` they read (grid,
slots per day). That only works for models without grid-sized weights (UniST computes its
positions on the fly); for any other model the command stops with the first weight whose
shape depends on the grid.
"""

from __future__ import annotations

import copy
import dataclasses
import time
import typing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from torch.utils.data import DataLoader
from torchmetrics import MeanMetric

from stvfm.atomic import write_json_atomic, write_text_atomic
from stvfm.data.datamodule import EpochShuffleSampler, default_batch_size
from stvfm.data.prepared import PreparedData, prepare_data
from stvfm.errors import ConfigError
from stvfm.models.base import Forecaster
from stvfm.models.registry import create_model, get_model_entry
from stvfm.training.checkpoints import load_checkpoint
from stvfm.training.claim import keep_earlier_rows, lock_folder, mark_in_progress, release_folder, restore_earlier_rows
from stvfm.training.config import RunConfig, protocol_for
from stvfm.training.folders import IN_PROGRESS_NAME, LAST_CHECKPOINT
from stvfm.training.results import data_record, parameter_counts
from stvfm.training.settings import PRETRAIN_DEFAULTS, OptimConfig
from stvfm.training.sittings import SittingLog
from stvfm.training.sittings import summary as sitting_summary
from stvfm.training.stopping import stop_reason
from stvfm.training.task import ForecastTask
from stvfm.training.trainer import build_trainer, selection_callbacks, timed_out
from stvfm.values import check_fields

#: The run settings pre-training reads as ``RunConfig`` does: same meaning, same default (except below).
SHARED_SETTINGS = ("channel", "steps", "scaling", "model_options", "max_epochs", "max_minutes", "patience",
                   "batch_size", "limit_train_batches", "precision", "seed", "optim", "accelerator", "data_root",
                   "progress")


def _shared_field(run_field: dataclasses.Field) -> tuple[str, Any, Any]:
    """The run setting as declared (type, range, help), with pre-training's own default where it has one."""
    hint = typing.get_type_hints(RunConfig)[run_field.name]
    if run_field.name in PRETRAIN_DEFAULTS:
        return run_field.name, hint, field(default=PRETRAIN_DEFAULTS[run_field.name], metadata=run_field.metadata)
    if run_field.default_factory is not dataclasses.MISSING:
        return run_field.name, hint, field(default_factory=run_field.default_factory, metadata=run_field.metadata)
    return run_field.name, hint, field(default=run_field.default, metadata=run_field.metadata)


_PretrainSettings = dataclasses.make_dataclass(
    "_PretrainSettings",
    [("model", str), ("datasets", list[str]), ("out", str)]
    + [_shared_field(f) for f in dataclasses.fields(RunConfig) if f.name in SHARED_SETTINGS],
)


@dataclass
class PretrainConfig(_PretrainSettings):
    """A multi-dataset pre-training run; its settings are ``RunConfig``'s fields (``SHARED_SETTINGS``),
    declared there once. ``batch_size`` None: UniST's rule by the largest grid."""

    def __post_init__(self) -> None:
        if isinstance(self.optim, dict):  # a partial mapping over the defaults, as flags and files give it
            self.optim = OptimConfig(**self.optim)
        check_fields(self, "")
        if len(self.datasets) < 2 or len(set(self.datasets)) != len(self.datasets):
            raise ConfigError(f"pre-training needs two or more different datasets, got {', '.join(self.datasets) or 'none'}")
        if not get_model_entry(self.model).cls.trainable:
            raise ConfigError(f"model {self.model!r} is classical: nothing to pre-train")

    def run_config(self, dataset: str) -> RunConfig:
        """The single-dataset settings of one member (protocol, trainer options); its own batch rule aside."""
        shared = {name: getattr(self, name) for name in SHARED_SETTINGS if name != "batch_size"}
        return RunConfig(model=self.model, dataset=dataset, out=self.out, **shared)


def shared_views(model: Forecaster, name: str, datas: dict[str, PreparedData],
                 options: dict[str, Any]) -> dict[str, Forecaster]:
    """One shallow copy of ``model`` per dataset: the same parameters, that dataset's shape.

    Checks first that a model built for each dataset's shape has exactly the weights of
    ``model``, so no weight silently means something else on another grid.
    """
    reference = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    views = {}
    for dataset, data in datas.items():
        built = create_model(name, data.forecast_shape, **options).state_dict()
        for key, value in built.items():
            if reference.get(key) != tuple(value.shape):
                raise ConfigError(f"model {name!r} cannot pre-train across grids: weight {key} has shape "
                                  f"{tuple(value.shape)} on {dataset} and {reference.get(key)} on the first dataset")
        view = copy.copy(model)  # shares _parameters/_modules/_buffers; only .shape differs
        view.shape = data.forecast_shape
        views[dataset] = view
    return views


class MultiGridTask(ForecastTask):
    """Mean loss over one batch per dataset; validation loss is the mean of per-dataset means."""

    def __init__(self, model: Forecaster, views: dict[str, Forecaster], optim: OptimConfig, run_config: dict,
                 data_record: dict):
        super().__init__(model, lambda values: values, optim, run_config=run_config, data_record=data_record)
        self.names = list(views)
        self.views = views  # a plain dict: the views are not registered twice in the state dict
        self.val_losses = torch.nn.ModuleDict({name: MeanMetric() for name in self.names})

    def trained_models(self) -> list[Forecaster]:
        return [self.model, *self.views.values()]  # shallow copies: an attribute set on the model is not theirs

    def training_step(self, batches: dict[str, dict[str, torch.Tensor]], batch_idx: int) -> torch.Tensor:
        losses = [self.views[name].loss(batch, self.views[name](batch))["loss"] for name, batch in batches.items()]
        loss = torch.stack(losses).mean()
        # each step's loss is already a mean over its batches, so every step weighs one in the epoch mean
        # (Lightning cannot read a batch size from a dict of batches)
        for name, value in zip(batches, losses, strict=True):
            self.log(f"train/loss_{name}", value.detach().float(), on_step=False, on_epoch=True, batch_size=1)
        self.log("train/loss", loss.detach().float(), on_step=True, on_epoch=True, prog_bar=True, batch_size=1)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        name = self.names[dataloader_idx]
        view = self.views[name]
        self.val_losses[name].update(view.loss(batch, view(batch))["loss"].detach().float(), weight=batch["x"].shape[0])

    def on_validation_epoch_end(self) -> None:
        per_dataset = {name: metric.compute() for name, metric in self.val_losses.items()}
        for name, value in per_dataset.items():
            self.log(f"val/loss_{name}", value)
            self.val_losses[name].reset()
        self.log("val/loss", torch.stack(list(per_dataset.values())).mean(), prog_bar=True)


class MultiGridDataModule(L.LightningDataModule):
    """Training: one batch of every dataset per step (the shorter ones cycle); validation: one loader each."""

    def __init__(self, datas: dict[str, PreparedData], batch_size: int, seed: int):
        super().__init__()
        self.datas = datas
        self.batch_size = batch_size
        self.seed = seed

    def train_dataloader(self):
        from lightning.pytorch.utilities import CombinedLoader

        loaders = {}
        for index, (name, data) in enumerate(self.datas.items()):
            dataset = data.dataset("train")
            loaders[name] = DataLoader(dataset, batch_size=self.batch_size,
                                       sampler=EpochShuffleSampler(dataset, self.seed + index))
        return CombinedLoader(loaders, mode="max_size_cycle")

    def val_dataloader(self) -> list[DataLoader]:
        return [DataLoader(data.dataset("val"), batch_size=4 * self.batch_size) for data in self.datas.values()]


def pretrain(config: PretrainConfig) -> dict[str, Any]:
    """Train on every dataset at once; writes ``config.yaml``, ``checkpoints/best.ckpt`` and ``metrics.json``.
    Run again into the same folder, it resumes from the last epoch end (``--max-minutes`` caps each sitting)."""
    out = Path(config.out)
    L.seed_everything(config.seed, workers=True, verbose=False)
    datas: dict[str, PreparedData] = {}
    for source in config.datasets:
        data = prepare_data(source, protocol_for(config.run_config(source)), root=config.data_root)
        if data.series.name in datas:
            raise ConfigError(f"{source}: a second dataset named {data.series.name!r}; rename one file")
        datas[data.series.name] = data  # series names key logs and metrics: no paths, no dots
    shapes = {name: data.forecast_shape for name, data in datas.items()}
    first = next(iter(shapes.values()))
    for name, shape in shapes.items():
        if (shape.channels, shape.history, shape.horizon) != (first.channels, first.history, first.horizon):
            raise ConfigError(f"{name}: {shape.channels} channel(s), {shape.history} -> {shape.horizon} steps; "
                              f"{next(iter(datas))} has {first.channels}, {first.history} -> {first.horizon}")
    model = create_model(config.model, first, **config.model_options)
    views = shared_views(model, config.model, datas, config.model_options)
    settings = {**vars(config), "optim": vars(config.optim)}
    _resume_point(out, settings)  # a folder of another pre-training is refused before anything in it changes
    lock_folder(out)
    try:  # read again under the lock: a sitting that held it until now may have moved last.ckpt on
        return _pretrain(config, out, datas, model, views, settings, _resume_point(out, settings))
    finally:
        release_folder(out)


def _pretrain(config: PretrainConfig, out: Path, datas: dict[str, PreparedData], model: Forecaster,
              views: dict[str, Forecaster], settings: dict[str, Any], resume: int | None) -> dict[str, Any]:
    """One sitting, run while this process holds the folder's lock."""
    mark_in_progress(out)  # until this sitting's metrics.json is written: a kill leaves it for the next
    write_text_atomic(out / "config.yaml", yaml.safe_dump(settings, sort_keys=False))
    # ``run`` is what ``fit --init-from`` checks: the model name and its options
    run_record = replace(config.run_config(config.datasets[0]), out=str(out)).to_dict() | {"pretrained_on": config.datasets}
    task = MultiGridTask(model, views, config.optim, run_config=run_record,
                         data_record={name: data_record(data) for name, data in datas.items()})
    batch_size = config.batch_size or min(default_batch_size(s.height, s.width) for s in (d.forecast_shape for d in datas.values()))
    module = MultiGridDataModule(datas, batch_size, config.seed)
    checkpoints, stopper, selection = selection_callbacks(out, "val/loss", config.patience)
    sittings = SittingLog(out, resumed=resume is not None, precision=config.precision)
    trainer = build_trainer(config.run_config(config.datasets[0]), out, [*selection, sittings], config.max_epochs)
    keep_earlier_rows(out / "logs", resume)  # the logged epochs a resumed run does not redo, safe from a kill
    started = time.perf_counter()
    trainer.fit(task, datamodule=module, ckpt_path=str(out / LAST_CHECKPOINT) if resume is not None else None)
    seconds = time.perf_counter() - started
    restore_earlier_rows(out / "logs")
    epochs = int(trainer.current_epoch)
    compute = sitting_summary(sittings.sittings)
    payload = {
        "model": config.model, "pretrained_on": list(datas), "channel": config.channel, "seed": config.seed,
        "best_val_loss": float(checkpoints.best_model_score) if checkpoints.best_model_score is not None else None,
        "val_loss_per_dataset": {name: float(trainer.callback_metrics[f"val/loss_{name}"])
                                 for name in datas if f"val/loss_{name}" in trainer.callback_metrics},
        "epochs": epochs, "train_seconds": seconds, **compute,
        "seconds_per_epoch": compute["total_train_seconds"] / max(1, epochs),
        "stop_reason": stop_reason(epochs, config.max_epochs, seconds, config.max_minutes,
                                   early_stopped=stopper.stopped_epoch > 0, timed_out=timed_out(trainer)),
        "checkpoint": checkpoints.best_model_path or None, "parameters": parameter_counts(model),
        "settings": settings,
    }
    write_json_atomic(out / "metrics.json", payload)
    (out / IN_PROGRESS_NAME).unlink(missing_ok=True)
    return payload


#: Settings a later sitting may change: how long it sits, and how it reports.
SITTING_SETTINGS = ("max_minutes", "progress")


def _resume_point(out: Path, settings: dict[str, Any]) -> int | None:
    """The epoch a folder's ``last.ckpt`` holds when it is this pre-training's to resume, None for a new
    one; a folder left by another pre-training (other datasets, model or schedule) is refused untouched."""
    recorded_path = out / "config.yaml"
    if not recorded_path.is_file():
        return None
    recorded = yaml.safe_load(recorded_path.read_text())
    if not isinstance(recorded, dict):
        raise ConfigError(f"{recorded_path}: not a pre-training record; use another --out")
    current = yaml.safe_load(yaml.safe_dump(settings))  # as written: tuples read back as lists
    differing = sorted(key for key in set(current) | set(recorded)
                       if key not in SITTING_SETTINGS and recorded.get(key) != current.get(key))
    if differing:
        raise ConfigError(f"{recorded_path}: left by another pre-training (differs in {', '.join(differing)}); "
                          "use another --out")
    last = out / LAST_CHECKPOINT
    return int(load_checkpoint(last).get("epoch", -1)) if last.is_file() else None
