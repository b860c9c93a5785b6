"""SHA-256 verification of registered data files, remembered so repeat loads stay fast.

A verified digest is cached under the user cache dir keyed on (absolute path, size,
mtime); any change to the file invalidates its entry and forces a fresh hash.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from stvfm.atomic import write_json_atomic
from stvfm.data.paths import user_cache_dir
from stvfm.errors import DataError

_CHUNK = 1 << 20


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _cache_file() -> Path:
    return user_cache_dir() / "verified_sha256.json"


def _cache_key(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def _read_cache() -> dict[str, str]:
    try:
        cached = json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}
    return cached if isinstance(cached, dict) else {}


def verify_sha256(path: str | os.PathLike, expected: str) -> None:
    """Raise DataError if ``path`` does not hash to ``expected``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    key = _cache_key(path)
    cache = _read_cache()
    if cache.get(key) == expected:
        return
    actual = sha256_of(path)
    if actual != expected:
        raise DataError(f"{path}: sha256 {actual[:16]}... does not match the expected {expected[:16]}...; the file is corrupt or another version")
    cache[key] = actual
    try:
        write_json_atomic(_cache_file(), cache)
    except OSError:
        pass  # a read-only cache dir only costs a re-hash next time
