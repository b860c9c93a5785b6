"""Everything ``stvfm serve`` can be told, with its defaults, in one place."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

#: Body size limit: a JSON history of a 200 x 200 two-channel grid over 6 steps is about 5 MB.
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024


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

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        payload = json.loads(text)
        return cls(**{**payload, "exports": tuple(payload["exports"])})
