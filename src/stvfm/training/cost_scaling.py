"""How ST-VFM's training cost grows with grid side and history length (``stvfm bench --scaling``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from stvfm.data.batch import random_batch
from stvfm.models import create_model
from stvfm.shape import ForecastShape
from stvfm.training.benchmark import machine_info, time_per_call
from stvfm.training.config import native_precision
from stvfm.training.flops import count_flops
from stvfm.training.settings import OptimConfig


@dataclass
class ScalingConfig:
    """How ST-VFM's training cost grows with grid side (square grids) and history length."""

    grids: tuple[int, ...] = (16, 32, 64, 128)  # grid sides, at ``base_history``
    histories: tuple[int, ...] = (6, 12, 24)  # history lengths, on a ``base_grid`` square grid
    base_grid: int = 16
    base_history: int = 6
    backbone: str = "dinov2-s"
    variant: str = "full"
    model_options: dict = field(default_factory=dict)
    time_up_to_gflop: float = 500.0  # time (batch 1) only the configurations up to this cost; count all
    steps: int = 2


def cost_scaling(config: ScalingConfig) -> dict:
    """FLOPs per training window of every configuration (counted on the meta device: no compute, any
    size); wall time and activation memory for the affordable ones; ratios to the base one."""
    cases = [(side, config.base_history) for side in config.grids]
    cases += [(config.base_grid, history) for history in config.histories if history != config.base_history]
    rows = [_scaling_case(side, history, config) for side, history in cases]
    base = next(row for row in rows if (row["grid"], row["history"]) == (config.base_grid, config.base_history))
    for row in rows:
        row["flop_ratio"] = row["train_gflop_per_window"] / base["train_gflop_per_window"]
        timed = row["train_s_per_window"] is not None and base["train_s_per_window"] is not None
        row["time_ratio"] = row["train_s_per_window"] / base["train_s_per_window"] if timed else None
    return {"machine": machine_info(torch.get_num_threads()), "config": asdict(config), "rows": rows,
            "precision": native_precision()}


def _scaling_case(side: int, history: int, config: ScalingConfig) -> dict:
    shape = ForecastShape(channels=1, height=side, width=side, slots_per_day=24, history=history)
    options = {"backbone": config.backbone, "weights": "random", "variant": config.variant, **config.model_options}
    with torch.device("meta"):
        meta_model = create_model("stvfm", shape, **options)
    meta_batch = {key: value.to("meta") for key, value in random_batch(shape, 1).items()}
    flops = count_flops(lambda: meta_model.loss(meta_batch, meta_model(meta_batch))["loss"].backward())
    patch = meta_model.config.patch
    row = {"grid": side, "history": history, "tokens_per_frame": (side // patch) * (side // patch),
           "train_gflop_per_window": flops / 1e9, "train_s_per_window": None, "saved_activations_mib": None}
    if flops / 1e9 <= config.time_up_to_gflop:
        torch.manual_seed(0)
        model = create_model("stvfm", shape, **options).train()
        batch = random_batch(shape, 1)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=OptimConfig.lr)
        bf16 = native_precision() == "bf16"  # timed as a real run would train here: emulated bf16 says nothing

        def train_step() -> None:
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(batch["x"].device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = model.loss(batch, model(batch))["loss"]
            loss.backward()
            optimizer.step()

        row["train_s_per_window"] = time_per_call(train_step, 1, config.steps)
        with torch.autocast(batch["x"].device.type, dtype=torch.bfloat16, enabled=bf16):
            row["saved_activations_mib"] = saved_for_backward_bytes(lambda: model.loss(batch, model(batch))["loss"]) / 2 ** 20
    return row


def saved_for_backward_bytes(forward: Callable[[], torch.Tensor]) -> int:
    """Bytes of the activations autograd keeps for the backward pass of ``forward()`` (parameters
    and tensors saved twice not counted): the training memory that grows with grid and history."""
    seen: set[int] = set()
    total = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        pointer = tensor.untyped_storage().data_ptr()
        if not isinstance(tensor, nn.Parameter) and pointer not in seen:
            seen.add(pointer)
            total += tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        forward()
    return total
