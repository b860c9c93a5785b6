"""Serving tests' helpers: a stand-in export, frames of a model's grid, the real server on loopback."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import uvicorn

from stvfm.serving.models import ServedModel

START = np.datetime64("2024-01-01T00:00", "s")


TINY_STVFM = {"backbone": "tiny", "weights": "random", "temporal_dim": 16, "temporal_heads": 2,
              "encoder_layers": 1, "decoder_layers": 1}


def tiny_exports(folder: Path) -> list[Path]:
    """Two exports of tiny runs on a synthetic 5 x 3 city: ST-VFM (two training batches) and last-value."""
    from stvfm.export.writer import export_run
    from stvfm.testing import write_synthetic_city
    from stvfm.training.config import RunConfig
    from stvfm.training.runner import evaluate, fit

    city = write_synthetic_city(folder / "city.npz", days=4, height=5, width=3)
    fit(RunConfig(model="stvfm", dataset=str(city), out=str(folder / "runs" / "stvfm"), model_options=TINY_STVFM,
                  max_epochs=1, limit_train_batches=2, batch_size=8, progress=False, accelerator="cpu"))
    evaluate(RunConfig(model="last", dataset=str(city), out=str(folder / "runs" / "last"), progress=False))
    exports = [folder / "exports" / "tiny-stvfm", folder / "exports" / "last"]
    for run, export in zip(("stvfm", "last"), exports, strict=True):
        export_run(folder / "runs" / run, export)
    return exports


def frames(model: ServedModel, steps: int, first: np.datetime64 = START, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Poisson counts on the model's grid, with timestamps stepping by its interval from ``first``."""
    values = np.random.default_rng(seed).poisson(4.0, (steps, *model.frame_shape)).astype(np.float32)
    times = first + np.arange(steps) * np.timedelta64(model.interval_minutes * 60, "s")
    return values, times


def body(model: ServedModel, values: np.ndarray, times: np.ndarray) -> dict:
    return {"model": model.name, "timestamps": np.datetime_as_string(times, unit="s").tolist(), "values": values.tolist()}


@contextlib.contextmanager
def running(app, root_path: str = "") -> Iterator[str]:
    """The app served on 127.0.0.1 until the block ends; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", root_path=root_path,
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


