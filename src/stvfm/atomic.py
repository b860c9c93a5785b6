"""Write outputs so a killed process never leaves a truncated file behind.

Imports from stvfm: ``stvfm.errors``.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stvfm.errors import OutputError

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` only on success.

    A write the system refuses (read-only folder, full disk, ``target`` a folder) is an
    ``OutputError`` naming ``target``, and leaves the old ``target`` as it was.
    """
    target = Path(target)
    tmp_path: Path | None = None
    try:
        if target.is_dir():
            raise IsADirectoryError(21, "is a folder, not a file")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the permissions a plain open() would give
        tmp_path = Path(tmp)
        yield tmp_path
        with open(tmp_path, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, target)
        _fsync_folder(target.parent)
    except OSError as error:
        raise OutputError(f"{target}: cannot write it ({error.strerror or error})") from None
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable: without it a power cut can bring back the old file."""
    if os.name != "posix":  # Windows cannot open a folder for fsync; its rename is durable enough
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_json_atomic(target: str | os.PathLike, payload: Any) -> Path:
    """Standard JSON only: NaN or infinity (which json.dumps would write as invalid ``NaN``) is refused."""
    try:
        text = json.dumps(payload, indent=2, sort_keys=False, allow_nan=False) + "\n"
    except ValueError as error:
        raise OutputError(f"{target}: not written, it would hold a value JSON cannot ({error})") from None
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return Path(target)


def write_text_atomic(target: str | os.PathLike, text: str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return Path(target)
