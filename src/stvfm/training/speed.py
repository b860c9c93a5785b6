"""Speed-ups that leave a run's numbers unchanged, applied by ``fit``, ``test`` and the benchmark."""

from __future__ import annotations

import torch
from torch import nn

from stvfm.errors import ConfigError
from stvfm.models.base import Forecaster


def cast_frozen_linears(model: nn.Module, dtype: torch.dtype) -> int:
    """Store every frozen ``nn.Linear`` in ``dtype`` once, so autocast stops re-casting its weights at every step.

    Autocast would cast these weights to the same dtype anyway, so the results do not change.
    Trained layers (adapters, token adapter, decoders) keep fp32 weights for the optimizer, and
    LayerNorms stay fp32 because CPU autocast runs them in fp32. Returns the number of layers cast.
    """
    cast = 0
    for module in model.modules():
        if isinstance(module, nn.Linear) and not any(p.requires_grad for p in module.parameters()):
            module.to(dtype)
            cast += 1
    return cast


def compile_backbone(model: Forecaster) -> None:
    """``torch.compile`` the frozen VFM in place (state-dict keys unchanged, so checkpoints stay portable).

    Only the backbone: compiling the whole ST-VFM measured slower than eager on CPU. Even the
    backbone alone pays off on some machines and thread counts and not on others
    (docs/benchmark.md), hence opt-in. Compilation costs about a minute per input shape and grad
    mode the first time (inductor caches it on disk for later runs).
    """
    if "backbone" not in model.describe():
        raise ConfigError(f"{type(model).__name__} has no vision backbone to compile; drop --compile-backbone")
    model.backbone.compile()
