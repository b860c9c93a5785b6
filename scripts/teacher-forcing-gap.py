#!/usr/bin/env python
"""How much a frame-by-frame recurrent model (PredRNN, MIM, MAU) loses by feeding back its own predictions:
validation RMSE of a checkpoint's forecast fed its own predictions (how it is validated and tested) against
fed the true future frames (what scheduled sampling feeds it early in training). A wide gap says training
stayed teacher-forced for too long.

    PYTHONPATH=src python scripts/teacher-forcing-gap.py runs/relay/bikenyc1-60d/predrnn-seed0/checkpoints/best.ckpt
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

from stvfm.models.recurrent import FrameRecurrentForecaster
from stvfm.training.checkpoints import restore
from stvfm.training.metrics import ForecastMetrics


def forecasts_fed_true_frames(model: FrameRecurrentForecaster, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The forecast with every future frame fed as observed: scheduled sampling at its first step."""
    saved_config, saved_epochs = model.config, model.epochs_trained
    model.config = dataclasses.replace(saved_config, scheduled_sampling_iterations=0, scheduled_sampling_epochs=1.0)
    model.epochs_trained = 0.0
    model.train()  # only the sampling reads the mode: these models have neither dropout nor batch norm
    try:
        return model(batch)["forecast"]
    finally:
        model.eval()
        model.config, model.epochs_trained = saved_config, saved_epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--split", default="val", choices=("val", "test"))
    args = parser.parse_args()
    config, data, model = restore(args.checkpoint, None, {"out": "-"})
    if not isinstance(model, FrameRecurrentForecaster):
        parser.error(f"{args.checkpoint}: a {config.model} checkpoint; this compares frame-by-frame recurrent models")
    metrics = {name: ForecastMetrics(data.scaler.inverse_transform, model.shape.horizon) for name in ("own", "true")}
    model.eval()
    with torch.no_grad():
        for batch in torch.utils.data.DataLoader(data.dataset(args.split), batch_size=64):
            metrics["own"].update(model(batch)["forecast"].float(), batch["y"].float(), batch.get("y_observed"))
            metrics["true"].update(forecasts_fed_true_frames(model, batch).float(), batch["y"].float(),
                                   batch.get("y_observed"))
    own, true = (metrics[name].compute() for name in ("own", "true"))
    print(f"{config.model} on {config.dataset} ({args.split}, channel {config.channel}, seed {config.seed}): "
          f"RMSE fed its own predictions {float(own['rmse']):.3f}, fed the true frames {float(true['rmse']):.3f}")


if __name__ == "__main__":
    main()
