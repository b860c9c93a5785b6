"""Everything ``stvfm serve`` can be told, with its defaults, in one place."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

#: Body size limit: a JSON history of a 200 x 200 two-channel grid over 6 steps is about 5 MB.
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
#: Seconds an idle keep-alive connection stays open. Longer than the idle expiry of the clients and proxies in
#: front (httpx 5 s, nginx upstream keepalive_timeout 60 s, AWS ALB 60 s): the client side always closes an idle
#: connection first, so no request is ever sent on a connection the server is closing (at uvicorn's default of
#: 5 s, equal to httpx's, a request raced the close and its client got a reset: docs/benchmark.md).
DEFAULT_KEEP_ALIVE_S = 75
#: glibc malloc for a long-running service: a few arenas shared by its threads (the event loop, the inference
#: thread, request threads) instead of one per thread, and a fixed mmap threshold, so a tensor buffer of 128 KiB or
#: more is mapped for its lifetime and given back when freed. glibc's default raises the threshold to the largest
#: buffer freed so far; buffers of every batch size then come from the heaps, fragment them, and RSS grows with the
#: requests served (docs/benchmark.md, "The forecast service").
DEFAULT_MALLOC_ARENAS = 2
DEFAULT_MALLOC_MMAP_THRESHOLD = 128 * 1024

@dataclass(frozen=True)
class ServeSettings:
    """How the service runs: its exports, its history store, and its HTTP and batching limits."""

    exports: tuple[str, ...] = field(default_factory=tuple)
    store: str = "stvfm-history.sqlite"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    root_path: str = ""
    forwarded_allow_ips: str = "127.0.0.1"
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    batch_window_ms: float = 2.0
    max_batch: int = 64
    keep_steps: int = 336
    keep_alive_s: int = DEFAULT_KEEP_ALIVE_S
    malloc_arenas: int = DEFAULT_MALLOC_ARENAS
    malloc_mmap_threshold: int = DEFAULT_MALLOC_MMAP_THRESHOLD

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        payload = json.loads(text)
        return cls(**{**payload, "exports": tuple(payload["exports"])})
