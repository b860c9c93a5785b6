"""Optimisers and learning-rate schedules that the models' published recipes use.

The settings (``OptimConfig``) are declared in ``training.settings``; the default is UniST's recipe
(AdamW, linear warm-up then cosine, NOTES section 1); a model's recipe file (``stvfm/recipes``)
names its own optimiser and schedule instead.
"""

from __future__ import annotations

import math

import torch

from stvfm.training.settings import OptimConfig


def build_optimizer(params: list[torch.nn.Parameter], config: OptimConfig) -> torch.optim.Optimizer:
    """Only parameters that train reach the optimizer, so frozen weights get no state."""
    params = [p for p in params if p.requires_grad]
    optimizer = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return optimizer(params, lr=config.lr, weight_decay=config.weight_decay)


def build_schedule(optimizer: torch.optim.Optimizer, config: OptimConfig, steps_per_epoch: int,
                   total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step multiplier of ``lr`` for every schedule, so all of them step the same way."""
    steps_per_epoch = max(1, steps_per_epoch)
    warmup = max(1, int(round(config.warmup_epochs * steps_per_epoch)))
    total = max(1, total_steps)
    floor = config.min_lr / config.lr
    peak = max(1, int(round(config.pct_start * total)))

    def cosine(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    def multistep(step: int) -> float:
        epoch = step // steps_per_epoch
        return config.gamma ** sum(epoch >= milestone for milestone in config.milestones)

    def onecycle(step: int) -> float:
        # torch's OneCycleLR defaults: from lr/25 up to lr (cosine), then down to lr/25/1e4
        start, end = 1 / 25, 1 / 25 / 1e4
        if step < peak:
            return start + (1 - start) * 0.5 * (1 - math.cos(math.pi * step / peak))
        progress = min(1.0, (step - peak) / max(1, total - peak))
        return end + (1 - end) * 0.5 * (1 + math.cos(math.pi * progress))

    def constant(step: int) -> float:
        return min(1.0, (step + 1) / warmup) if config.warmup_epochs else 1.0

    factor = {"cosine": cosine, "multistep": multistep, "onecycle": onecycle, "constant": constant}[config.schedule]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
