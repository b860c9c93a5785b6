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
#: glibc malloc arenas in a serving process: each thread that allocates (event loop, inference, request threads)
#: would otherwise get an arena of its own, and fragmentation across them grows RSS with every request served.
DEFAULT_MALLOC_ARENAS = 2


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

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        payload = json.loads(text)
        return cls(**{**payload, "exports": tuple(payload["exports"])})
