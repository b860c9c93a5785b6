"""Channels-last vs contiguous convolutions, per model: one training step at the model's recipe size on a
bikenyc1-shaped batch, both layouts in one process, alternating, median of REPEATS (default 5).

    python scripts/bench-memory-format.py simvp tau stresnet        # THREADS=1 by default, as the relays train

Prints each model's step time in both layouts and their ratio, and the max difference of the two forecasts
from the same weights (rounding only). SimVP converts itself to channels-last because of this figure.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import torch
import yaml

from stvfm.data.batch import random_batch
from stvfm.models import create_model
from stvfm.models.registry import build_config
from stvfm.shape import ForecastShape

RECIPES = Path(__file__).resolve().parents[1] / "src" / "stvfm" / "recipes"


def training_step(model: torch.nn.Module, optimiser: torch.optim.Optimizer, batch: dict) -> float:
    """Seconds of one forward, loss, backward and optimiser step."""
    started = time.perf_counter()
    optimiser.zero_grad()
    model.loss(batch, model(batch))["loss"].backward()
    optimiser.step()
    return time.perf_counter() - started


def main(models: list[str]) -> None:
    torch.set_num_threads(int(os.environ.get("THREADS", "1")))
    repeats = int(os.environ.get("REPEATS", "5"))
    print(f"torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} thread(s)")
    for name in models:
        recipe = yaml.safe_load((RECIPES / f"{name}.yaml").read_text())
        options = recipe.get("model_options", {})
        config = build_config(name, options)
        shape = ForecastShape(history=6, horizon=6, channels=1, height=16, width=8, slots_per_day=24,
                              daily_context=getattr(config, "daily_context", 0),
                              weekly_context=getattr(config, "weekly_context", 0))
        batch = dict(random_batch(shape, recipe["batch_size"]))
        torch.manual_seed(0)
        first = create_model(name, shape, **options)
        layouts = {}
        for layout, memory_format in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
            model = create_model(name, shape, **options)
            model.load_state_dict(first.state_dict())
            model.to(memory_format=memory_format)
            layouts[layout] = (model, torch.optim.Adam(model.parameters(), 1e-3))
        with torch.no_grad():  # in eval mode: dropout would make the two differ by more than rounding
            plain, last = (layouts[layout][0].eval() for layout in ("contiguous", "channels_last"))
            difference = (plain(batch)["forecast"] - last(batch)["forecast"]).abs().max()
            plain.train(), last.train()

        for model, optimiser in layouts.values():
            training_step(model, optimiser, batch)  # warm-up
        times = {layout: [] for layout in layouts}
        for _ in range(repeats):
            for layout, (model, optimiser) in layouts.items():
                times[layout].append(training_step(model, optimiser, batch))
        median = {layout: statistics.median(values) for layout, values in times.items()}
        print(f"{name}: batch {recipe['batch_size']}, contiguous {median['contiguous']:.3f} s, channels-last "
              f"{median['channels_last']:.3f} s: {median['contiguous'] / median['channels_last']:.2f}x; "
              f"forecasts differ by at most {float(difference):.1e} (scaled units)", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["simvp", "tau"])
