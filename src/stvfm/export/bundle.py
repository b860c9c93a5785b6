"""An export folder's files and its manifest: written last, checked first.

The manifest lists every file with its sha256 and size. ``verify`` reads it and every file it
names before anything is built, so a truncated, edited or missing file is one line naming it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from stvfm.atomic import write_json_atomic
from stvfm.errors import CheckpointError

FORMAT = "stvfm-export"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
WEIGHTS = "weights.safetensors"
CONFIG = "config.json"
DATA = "data.json"
CARD = "card.json"
README = "README.md"
ONNX = "model.onnx"
ONNX_INT8 = "model.int8.onnx"
ONNX_RECORD = "onnx.json"
#: Files every export has; the ONNX ones are optional.
REQUIRED = (WEIGHTS, CONFIG, DATA, CARD, README)


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def is_export(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder that claims to be an export (it has a manifest); ``verify`` says if it is one."""
    return Path(path).is_dir() and (Path(path) / MANIFEST).is_file()


def write_manifest(folder: Path, names: list[str]) -> Path:
    """The manifest of ``names`` in ``folder``, written after them (atomically), so a half-written export has none."""
    files = {name: {"sha256": file_sha256(folder / name), "bytes": (folder / name).stat().st_size}
             for name in sorted(names)}
    return write_json_atomic(folder / MANIFEST, {"format": FORMAT, "version": FORMAT_VERSION, "files": files})


def verify(folder: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a sound export; a ``CheckpointError`` naming the first problem otherwise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: not an export folder (not found, or not a folder)")
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        raise CheckpointError(f"{manifest_path}: missing; not an stvfm export (make one with `stvfm export RUN --out DIR`)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{manifest_path}: not valid JSON ({error})") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(files, dict):
        raise CheckpointError(f"{manifest_path}: not an stvfm export manifest")
    if manifest.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"{manifest_path}: export format version {manifest.get('version')!r}; "
                              f"this stvfm reads version {FORMAT_VERSION}")
    missing = [name for name in REQUIRED if name not in files]
    if missing:
        raise CheckpointError(f"{manifest_path}: does not list {', '.join(missing)}")
    for name, entry in files.items():
        path = folder / name
        if Path(name).name != name or not isinstance(entry, dict):
            raise CheckpointError(f"{manifest_path}: malformed entry {name!r}")
        if not path.is_file():
            raise CheckpointError(f"{path}: listed in the manifest but missing")
        if path.stat().st_size != entry.get("bytes") or file_sha256(path) != entry.get("sha256"):
            raise CheckpointError(f"{path}: sha256 differs from the manifest's (changed or truncated after export)")
    return manifest


def read_json(folder: Path, name: str) -> dict[str, Any]:
    """One of the export's JSON files (already verified against the manifest) as a dict."""
    try:
        payload = json.loads((folder / name).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{folder / name}: not valid JSON ({error})") from None
    if not isinstance(payload, dict):
        raise CheckpointError(f"{folder / name}: expected a JSON object")
    return payload
