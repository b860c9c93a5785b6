"""Eager vs SDPA attention in ST-VFM's cross-prompt block, as a ratio measured in one process.

TaxiNYC shape at batch 8 (48 frames x 48 tokens, width 384, prompts = every token of the other
branch), bf16 autocast, forward + backward; the two kernels alternate so both see the same load.
    python scripts/probe-cross-prompt.py [THREADS]
"""

import sys
import time

import torch

import stvfm.attention as rule
from stvfm.models.stvfm.cross_prompt import CrossPromptBlock

KERNELS = {"eager": rule.EAGER_ATTENTION_MAX_TOKENS, "sdpa": 0}  # 0: no sequence counts as short
ROUNDS = 5


def main() -> None:
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    torch.manual_seed(0)
    block = CrossPromptBlock(384, 6, 0, 0.1).train()
    st, flow = (torch.randn(48, 48, 384, requires_grad=True) for _ in range(2))

    def step() -> float:
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            a, b = block(st, flow)
        (a.float().sum() + b.float().sum()).backward()
        return time.perf_counter() - started

    seconds: dict[str, list[float]] = {name: [] for name in KERNELS}
    for limit in KERNELS.values():  # warm-up
        rule.EAGER_ATTENTION_MAX_TOKENS = limit
        step()
    for _ in range(ROUNDS):
        for name, limit in KERNELS.items():
            rule.EAGER_ATTENTION_MAX_TOKENS = limit
            seconds[name].append(step())
    median = {name: sorted(values)[ROUNDS // 2] for name, values in seconds.items()}
    for name, value in median.items():
        print(f"{name}: median {value:.3f} s over {ROUNDS}")
    print(f"sdpa / eager: {median['sdpa'] / median['eager']:.2f}x")


if __name__ == "__main__":
    main()
