"""The one LightningModule that trains and evaluates any registered forecaster."""

from __future__ import annotations

import time
from collections.abc import Callable

import lightning as L
import numpy as np
import torch

from stvfm.data.datamodule import derived_seed
from stvfm.data.scaling import descale_forecast
from stvfm.models.base import Forecaster
from stvfm.training.metrics import ForecastMetrics
from stvfm.training.optim import build_optimizer, build_schedule
from stvfm.training.settings import OptimConfig
from stvfm.training.stopping import EPOCH_SECONDS


class ForecastTask(L.LightningModule):
    """Wraps a pure model: losses come from ``model.loss``, metrics from ``model.predict``.

    ``inverse`` maps scaled values back to original units, so validation and test metrics
    are logged in the units users report. Metrics count the targets a batch's ``y_observed``
    marks (all without it); saved targets are NaN where they were missing.
    """

    def __init__(self, model: Forecaster, inverse: Callable[[torch.Tensor], torch.Tensor],
                 optim: OptimConfig | None = None, run_config: dict | None = None,
                 data_record: dict | None = None):
        super().__init__()
        self.model = model
        self.optim_config = optim or OptimConfig()
        self.run_config = dict(run_config or {})
        self.data_record = dict(data_record or {})
        horizon = model.shape.horizon
        self.inverse = inverse
        self.val_metrics = ForecastMetrics(inverse, horizon)
        self.test_metrics = ForecastMetrics(inverse, horizon)
        self.collect_predictions = False
        self._collected: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._epoch_began: float | None = None

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.model(batch)

    def _log_losses(self, stage: str, losses: dict[str, torch.Tensor], batch_size: int) -> None:
        on_step = stage == "train"
        for name, value in losses.items():
            self.log(f"{stage}/{name}", value.detach().float(), on_step=on_step, on_epoch=True,
                     prog_bar=name == "loss", batch_size=batch_size, sync_dist=not on_step)

    def on_train_batch_start(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        # Dropout draws from the global RNG, which a checkpoint does not hold and which loaders and
        # hooks draw from in a different order after a restart: re-seed it from (seed, epoch, batch)
        # so a run resumed from an epoch-end checkpoint continues bit for bit.
        torch.manual_seed(derived_seed(int(self.run_config.get("seed", 0)), self.current_epoch, batch_idx))
        epochs_trained = self.current_epoch + batch_idx / max(1, self.trainer.num_training_batches)
        for model in self.trained_models():
            model.epochs_trained = epochs_trained

    def trained_models(self) -> list[Forecaster]:
        """The forecasters a training step runs (the model; a multi-grid task's views of it too)."""
        return [self.model]

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        losses = self.model.loss(batch, self.model(batch))
        self._log_losses("train", losses, batch["x"].shape[0])
        return losses["loss"]

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        outputs = self.model(batch)
        self._log_losses("val", self.model.loss(batch, outputs), batch["x"].shape[0])
        self.val_metrics.update(outputs["forecast"].float(), batch["y"].float(), batch.get("y_observed"))

    def on_train_start(self) -> None:
        self._epoch_began = time.perf_counter()

    def on_validation_epoch_end(self) -> None:
        values = self.val_metrics.compute()
        self.log("val/mae", values["mae"], prog_bar=True, sync_dist=False)
        self.log("val/rmse", values["rmse"], prog_bar=True, sync_dist=False)
        self.val_metrics.reset()
        if self._epoch_began is not None and not self.trainer.sanity_checking:
            # wall time since the last validation (this sitting's start for its first): what accuracy
            # against compute reads per epoch, since a run's total hides how the epochs spent it
            now = time.perf_counter()
            self.log(EPOCH_SECONDS, now - self._epoch_began, sync_dist=False)
            self._epoch_began = now

    def on_test_epoch_start(self) -> None:
        self._collected = []

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        prediction = self.model.predict(batch).float()
        observed = batch.get("y_observed")
        self.test_metrics.update(prediction, batch["y"].float(), observed)
        if self.collect_predictions:
            # The one de-scaling rule (descale_forecast) at a second precision, on purpose: the metric
            # de-scales in float64 (figures kept bit for bit), the saved forecasts in float32, bit-equal
            # to what an export forecasts.
            descaled = descale_forecast(prediction, self.inverse).cpu()
            target = self.inverse(batch["y"].float())
            if observed is not None:
                target = torch.where(observed, target, torch.nan)
            self._collected.append((descaled, target.cpu(), batch["start"].cpu()))

    def collected_predictions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(prediction, target, start) of the last test pass, in original units."""
        predictions, targets, starts = zip(*self._collected, strict=True)
        return (torch.cat(predictions).numpy(), torch.cat(targets).numpy(), torch.cat(starts).numpy())

    def on_test_epoch_end(self) -> None:
        values = self.test_metrics.compute()
        self.log("test/mae", values["mae"], sync_dist=False)
        self.log("test/rmse", values["rmse"], sync_dist=False)
        self.test_results = values
        self.test_metrics.reset()

    def configure_optimizers(self):
        optimizer = build_optimizer(list(self.model.parameters()), self.optim_config)
        steps_per_epoch = max(1, int(self.trainer.estimated_stepping_batches // max(1, self.trainer.max_epochs)))
        scheduler = build_schedule(optimizer, self.optim_config, steps_per_epoch,
                                  int(self.trainer.estimated_stepping_batches))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Plain types only, so the checkpoint loads with weights_only=True and needs no training data to predict.
        checkpoint["stvfm"] = {"run": self.run_config, "data": self.data_record}
