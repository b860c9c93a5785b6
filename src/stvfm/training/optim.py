"""Optimisers and learning-rate schedules that the models' published recipes use.

The default is UniST's recipe (AdamW, linear warm-up then cosine, NOTES section 1); a
model's recipe file (``stvfm/recipes``) names its own optimiser and schedule instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from stvfm.errors import ConfigError
from stvfm.values import check_fields

OPTIMIZERS = ("adamw", "adam")
SCHEDULES = ("cosine", "multistep", "onecycle", "constant")
#: Schedules whose shape is stretched over the whole run: their length (max epochs) decides the result.
RUN_LENGTH_SCHEDULES = ("cosine", "onecycle")


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 3e-4
    weight_decay: float = 1e-6
    warmup_epochs: float = 5.0  # linear warm-up before "cosine" (and "constant")
    min_lr: float = 1e-5  # where "cosine" ends
    grad_clip: float = 1.0  # gradient-norm clip; 0 = none
    optimizer: str = "adamw"  # "adamw" (decoupled weight decay) or "adam" (L2 weight decay, as Keras/PyTorch Adam)
    schedule: str = "cosine"  # one of SCHEDULES
    milestones: tuple[int, ...] = ()  # "multistep": epochs at which the rate is multiplied by gamma
    gamma: float = 0.5  # "multistep" factor
    pct_start: float = 0.3  # "onecycle": share of the steps spent rising to lr
    ema_decay: float = 0.0  # > 0: validate, select and test an exponential moving average of the weights

    def __post_init__(self) -> None:
        check_fields(self, "optim.")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        if not (self.lr > 0) or self.weight_decay < 0 or self.warmup_epochs < 0 or self.min_lr < 0 or self.grad_clip < 0:
            raise ConfigError("lr must be > 0; weight_decay, warmup_epochs, min_lr and grad_clip must be >= 0")
        if not 0 < self.gamma <= 1 or not 0 < self.pct_start < 1:
            raise ConfigError("gamma must be in (0, 1] and pct_start in (0, 1)")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"ema_decay must be in [0, 1) (0: no averaging), got {self.ema_decay}")
        # YAML and JSON give lists; one type keeps equal configs equal (run identity compares them)
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        if any(m < 1 for m in self.milestones) or list(self.milestones) != sorted(set(self.milestones)):
            raise ConfigError(f"milestones must be increasing epochs >= 1, got {list(self.milestones)}")

    def to_dict(self) -> dict:
        return {**self.__dict__, "milestones": list(self.milestones)}


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
