"""AdamW with linear warm-up then cosine decay, UniST's recipe (NOTES section 1)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 3e-4
    weight_decay: float = 1e-6
    warmup_epochs: float = 5.0
    min_lr: float = 1e-5
    grad_clip: float = 1.0


def build_optimizer(params: list[torch.nn.Parameter], config: OptimConfig) -> torch.optim.Optimizer:
    """Only parameters that train reach the optimizer, so frozen weights get no state."""
    params = [p for p in params if p.requires_grad]
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def warmup_cosine(optimizer: torch.optim.Optimizer, config: OptimConfig, steps_per_epoch: int,
                  total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step schedule: linear warm-up over ``warmup_epochs``, then cosine to ``min_lr``."""
    warmup = max(1, int(round(config.warmup_epochs * steps_per_epoch)))
    total = max(total_steps, warmup + 1)
    floor = config.min_lr / config.lr

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / (total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
