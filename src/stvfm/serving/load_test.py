"""A bounded load test of a running service: concurrent clients, a fixed number of forecasts, latency and memory.

Each client posts the same well-formed history (P frames of the model's grid, on its step grid) to
POST /v1/forecast as soon as its previous answer arrives, until the fixed number of requests has been
sent; any answer but 200 counts as a failure. ``benchmark_service`` runs ``stvfm serve`` in a subprocess
and reads its resident memory from /proc (Linux).
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np


@dataclass(frozen=True)
class LoadResult:
    clients: int
    requests: int
    failed: int
    failures: dict[str, int]  # what each failed request got: an HTTP status or the client's exception
    p50_ms: float
    p99_ms: float
    requests_per_s: float
    forward_passes: int  # how many batches served these requests (micro-batching)

    def as_dict(self) -> dict:
        return asdict(self)


def forecast_request(model: dict, seed: int = 0) -> dict:
    """A valid POST /v1/forecast body for a model as GET /v1/models describes it: Poisson(4) counts."""
    steps = model["history_steps"]
    shape = (steps, model["channels"], model["height"], model["width"])
    values = np.random.default_rng(seed).poisson(4.0, shape).astype(float)
    start = np.datetime64(model["series_start"], "s")
    times = start + np.arange(steps) * np.timedelta64(model["interval_minutes"] * 60, "s")
    return {"model": model["name"], "timestamps": np.datetime_as_string(times, unit="s").tolist(),
            "values": values.tolist()}


def rss_bytes(pid: int) -> int:
    """A process's resident set size (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise OSError(f"/proc/{pid}/status has no VmRSS line")


async def _drive(url: str, body: dict, clients: int, requests: int) -> tuple[list[float], Counter]:
    remaining = requests
    latencies: list[float] = []
    failures: Counter = Counter()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        async def client() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                began = time.perf_counter()
                try:
                    answer = await http.post("/v1/forecast", json=body)
                    if answer.status_code != 200:
                        failures[f"HTTP {answer.status_code}"] += 1
                except httpx.HTTPError as error:
                    failures[type(error).__name__] += 1
                latencies.append(time.perf_counter() - began)

        await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, failures


def load_test(url: str, model_name: str, clients: int, requests: int) -> LoadResult:
    """``requests`` forecasts of one model by ``clients`` concurrent clients, with latency percentiles."""
    models = {model["name"]: model for model in httpx.get(f"{url}/v1/models", timeout=30).json()["models"]}
    body = forecast_request(models[model_name])
    passes_before = httpx.get(f"{url}/v1/health", timeout=30).json()["models"][model_name]["forward_passes"]
    began = time.perf_counter()
    latencies, failures = asyncio.run(_drive(url, body, clients, requests))
    seconds = time.perf_counter() - began
    passes = httpx.get(f"{url}/v1/health", timeout=30).json()["models"][model_name]["forward_passes"] - passes_before
    milliseconds = np.array(latencies) * 1000
    return LoadResult(clients=clients, requests=requests, failed=sum(failures.values()), failures=dict(failures),
                      p50_ms=round(float(np.percentile(milliseconds, 50)), 2),
                      p99_ms=round(float(np.percentile(milliseconds, 99)), 2),
                      requests_per_s=round(requests / seconds, 1), forward_passes=passes)


def benchmark_service(exports: list[str], model_name: str, store: str, clients: tuple[int, ...] = (1, 8, 32),
                      requests: int = 500, memory_requests: int = 10_000, memory_readings: int = 4,
                      serve_options: tuple[str, ...] = ()) -> dict:
    """Start ``stvfm serve`` (with ``serve_options``) on loopback, run ``load_test`` at each client count, then
    ``memory_requests`` more at the largest count in ``memory_readings`` equal parts, reading the server's resident
    memory before the first part and after each; stop the server."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "stvfm.cli.main", "serve", *exports, "--port", str(port), "--store", store,
               *serve_options]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the service did not start: {server.stderr.read()[-2000:] if server.stderr else ''}")
            time.sleep(0.2)
        rows = [load_test(url, model_name, count, requests).as_dict() for count in clients]
        part = memory_requests // memory_readings
        rss = [rss_bytes(server.pid)]
        parts = []
        for _ in range(memory_readings):
            parts.append(load_test(url, model_name, max(clients), part).as_dict())
            rss.append(rss_bytes(server.pid))
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {"rows": rows, "memory": {"parts": parts, "requests_per_part": part,
                                     "rss_mib": [round(value / 2**20, 1) for value in rss]}}
