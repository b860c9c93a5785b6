"""Concurrent forecasts for one model gathered into one forward pass.

Requests wait in an asyncio queue; a collector takes the first, waits a short window, takes what
arrived meanwhile (up to a full batch), then runs the whole batch in the service's one inference thread, so
the event loop keeps accepting requests meanwhile. Under load the queue fills while a pass runs,
so batches grow with concurrency; alone, a request waits only the window.
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from stvfm.serving.frames import Frames
from stvfm.serving.models import ServedModel


@dataclass
class BatchCounts:
    forward_passes: int = 0
    forecasts: int = 0
    largest_batch: int = 0


class MicroBatcher:
    """One model's queue and collector; ``start`` and ``stop`` run inside the service's event loop."""

    def __init__(self, model: ServedModel, executor: Executor, window_s: float, max_batch: int):
        self.model, self.executor, self.window_s, self.max_batch = model, executor, window_s, max_batch
        self.counts = BatchCounts()
        self._queue: asyncio.Queue[tuple[Frames, asyncio.Future]] | None = None
        self._collector: asyncio.Task | None = None

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._collector = asyncio.create_task(self._collect(), name=f"batcher-{self.model.name}")

    async def stop(self) -> None:
        if self._collector is not None:
            self._collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._collector

    async def forecast(self, history: Frames) -> Frames:
        """The model's next Q frames after exactly P history frames, computed in some batch."""
        done = asyncio.get_running_loop().create_future()
        await self._queue.put((history, done))
        return await done

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            waiting = [await self._queue.get()]
            # sleep, then take what arrived: asyncio.wait_for(queue.get(), timeout) can take an item and still
            # time out (Python < 3.12), and a request lost so never gets its answer
            await asyncio.sleep(self.window_s)
            while len(waiting) < self.max_batch and not self._queue.empty():
                waiting.append(self._queue.get_nowait())
            waiting = [(history, done) for history, done in waiting if not done.cancelled()]
            if waiting:
                await self._run(loop, waiting)

    async def _run(self, loop: asyncio.AbstractEventLoop, waiting: list[tuple[Frames, asyncio.Future]]) -> None:
        histories = np.stack([history.values for history, _ in waiting])
        times = np.stack([history.timestamps for history, _ in waiting])
        try:
            futures, future_times = await loop.run_in_executor(self.executor, self.model.forecast_batch, histories, times)
        except Exception as error:  # noqa: BLE001  (every request of the batch shares the pass's failure)
            for _, done in waiting:
                if not done.done():
                    done.set_exception(error)
            return
        self.counts.forward_passes += 1
        self.counts.forecasts += len(waiting)
        self.counts.largest_batch = max(self.counts.largest_batch, len(waiting))
        for index, (_, done) in enumerate(waiting):
            if not done.done():
                done.set_result(Frames(np.asarray(futures[index], dtype=np.float32),
                                       np.asarray(future_times[index]).astype("datetime64[s]")))
