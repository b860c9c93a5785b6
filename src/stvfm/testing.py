"""Helpers for testing forecasters, ours or a user's: well-formed random batches and a can-it-learn check.

Every model's smoke test (shapes, loss goes down) uses these, so a new model file needs
only a few lines of test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from stvfm.data.batch import random_batch

#: Config overrides that make each family a 16-wide, one-layer ViT of the same architecture.
SMALL_BACKBONE_CONFIGS = {
    "tiny": {},
    "dinov2-s": dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2),
    "clip-b16": dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32),
    "deit-b": dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32),
    "videomae-s": dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32),
}


#: A random but well-formed batch, values in [-1, 1], as ``stvfm.data.windows`` builds it.
make_batch = random_batch


def overfit_losses(model: torch.nn.Module, batch: dict[str, torch.Tensor], steps: int = 30, lr: float = 3e-3) -> tuple[float, float]:
    """Loss before and after ``steps`` Adam steps on one batch: a learnable model must go down."""
    torch.manual_seed(0)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    model.train()
    first = None
    for _ in range(steps):
        optimizer.zero_grad()
        loss = model.loss(batch, model(batch))["loss"]
        if first is None:
            first = float(loss.detach())
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        last = float(model.loss(batch, model(batch))["loss"])
    return first, last


def write_synthetic_city(path: str | Path, days: int = 20, height: int = 5, width: int = 3,
                         interval_minutes: int = 60, seed: int = 0, channel: str = "pickups") -> Path:
    """A generic-format file of Poisson(4) counts from 2024-01-01 on: a real file, a tiny grid.

    Twenty days leave room for the models with weekly context; the series is named after the file.
    """
    from stvfm.data.series import GridSeries
    from stvfm.data.sources.generic import save_generic_npz

    path = Path(path)
    steps = days * 24 * 60 // interval_minutes
    values = np.random.default_rng(seed).poisson(4.0, size=(steps, 1, height, width)).astype(np.float32)
    timestamps = np.datetime64("2024-01-01T00:00", "s") + np.arange(steps) * np.timedelta64(interval_minutes * 60, "s")
    return save_generic_npz(GridSeries(path.stem, values, timestamps, interval_minutes, (channel,)), path)
