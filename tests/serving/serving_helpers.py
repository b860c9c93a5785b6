"""Serving tests' helpers: a stand-in export, frames of a model's grid, the real server on loopback."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import uvicorn

from stvfm.serving.models import ServedModel

START = np.datetime64("2024-01-01T00:00", "s")


class StandInForecaster:
    """Until ``stvfm.load`` lands: the export contract, forecasting each step as the history's mean plus its step."""

    history_steps, horizon, grid, interval_minutes = 6, 3, (1, 5, 3), 60
    card: ClassVar[dict] = {"model": "stand-in", "dataset": "synthetic"}

    def forecast_batch(self, histories: np.ndarray, timestamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        steps = np.arange(1, self.horizon + 1)
        mean = histories.mean(axis=1, keepdims=True)
        futures = mean + steps[None, :, None, None, None]
        step = np.timedelta64(self.interval_minutes * 60, "s")
        return futures.astype(np.float32), timestamps[:, -1:] + step * steps[None, :]

    def forecast(self, history: np.ndarray, timestamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        futures, times = self.forecast_batch(history[None], timestamps[None])
        return futures[0], times[0]


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


