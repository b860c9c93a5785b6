"""Helpers for the report tests: run folders shaped like the ones `stvfm fit` writes, tiny."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SPARSE_LIGHTNING_LOG = """epoch,step,train/loss_step,train/loss_epoch,val/loss,val/mae,val/rmse
0,1,0.9,,,,
0,2,,,0.8,3.0,4.0
0,2,,0.85,,,
1,4,0.6,,,,
1,5,,,0.5,2.0,3.0
1,5,,0.55,,,
"""


def write_run(run_dir: Path, model: str = "stvfm", rmse_scale: float = 1.0, with_logs: bool = True, rmse: float = 2.5,
              **metrics_fields) -> Path:
    """A run folder shaped like the ones `stvfm fit` writes, small enough to plot in well under a second."""
    run_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    target = rng.uniform(0, 10, size=(5, 6, 1, 4, 3)).astype(np.float32)
    prediction = (target + rng.normal(0, 1, size=target.shape)).astype(np.float32)
    starts = np.arange(5) + 100
    first_step = np.datetime64("2016-03-01T06:00") + (starts - 100) * np.timedelta64(30, "m")
    np.savez_compressed(run_dir / "predictions.npz", prediction=prediction, target=target, start=starts,
                        first_step_time=first_step.astype("datetime64[s]").astype(str),
                        channel_names=np.array(["inflow"]))
    per_horizon = {"mae": [rmse_scale * (1 + 0.1 * k) for k in range(6)],
                   "rmse": [rmse_scale * (2 + 0.2 * k) for k in range(6)]}
    metrics = {"dataset": "toy", "channel": 0, "split": "test", "model": model, "mae": 1.2, "rmse": rmse,
               "per_horizon": per_horizon, "n_windows": 5, "weights": {"label": "Tiny ViT (random-init)"},
               "variant": "full", "settings": {}, **metrics_fields}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    if with_logs:
        (run_dir / "logs").mkdir()
        (run_dir / "logs" / "metrics.csv").write_text(SPARSE_LIGHTNING_LOG)
    return run_dir
