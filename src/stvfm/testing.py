"""Helpers for testing forecasters, ours or a user's: well-formed random batches and a can-it-learn check.

Every model's smoke test (shapes, loss goes down) uses these, so a new model file needs
only a few lines of test. Only tests import this module; the library's own code reaches the
same pieces where they live (``data.batch``, ``data.synthetic``, ``backbones.factory``).

Imports from stvfm: ``stvfm.backbones``, ``stvfm.data``.
"""

from __future__ import annotations

import torch

from stvfm.backbones.factory import SMALL_BACKBONE_CONFIGS  # noqa: F401  (re-exported for tests)
from stvfm.data.batch import random_batch
from stvfm.data.synthetic import write_synthetic_city  # noqa: F401  (re-exported for tests)

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


#: Small widths for the learned baselines, for tests that prove wiring (a CLI path, an experiment's plumbing),
#: not capacity: their default sizes are built and run on the meta device (tests/models/test_meta_device.py).
SMALL_MODEL_OPTIONS = {
    "unist": {"width": 16, "encoder_depth": 1, "decoder_depth": 1, "heads": 2, "spatial_memory": 8, "temporal_memory": 8},
    "stresnet": {"filters": 8, "residual_units": 1},
    "simvp": {"hidden_spatial": 8, "hidden_temporal": 16, "temporal_layers": 2},
    "tau": {"hidden_spatial": 8, "hidden_temporal": 16, "temporal_layers": 2},
    "predrnn": {"layers": 2, "hidden": 8},
    "mim": {"num_layers": 2, "hidden": 8},
    "mau": {"num_layers": 2, "hidden": 8},
    "patchtst": {"width": 16, "heads": 2, "layers": 1, "feedforward": 32},
    "itransformer": {"width": 16, "heads": 2, "layers": 1, "feedforward": 32},
    "acfm": {"hidden": 8},
    "stgsp": {"hidden": 16, "heads": 2, "layers": 1},
    "mcstl": {"hidden": 16, "heads": 2, "layers": 1},
    "stnorm": {"channels": 8, "skip_channels": 16},
}
