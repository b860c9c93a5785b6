"""Where dataset files live: one data root holding one folder per registered dataset.

Resolution order: an explicit argument, then ``$STVFM_DATA_ROOT``, then a ``shared/data``
folder beside the project (found walking up from the working directory and from the
installed package: the development layout), then the per-user cache
``$XDG_CACHE_HOME/stvfm/data`` (``~/.cache/stvfm/data``), where ``stvfm data fetch`` writes.
"""

from __future__ import annotations

import os
from pathlib import Path

from stvfm.data.registry import DatasetSpec, list_datasets

DATA_ROOT_ENV = "STVFM_DATA_ROOT"


def user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "stvfm"


def _looks_like_data_root(folder: Path) -> bool:
    """A ``shared/data`` folder counts only if it holds a registered dataset, not any folder of that name."""
    return folder.is_dir() and any((folder / spec.folder).is_dir() for spec in list_datasets())


def _shared_data_beside(start: Path) -> Path | None:
    for ancestor in (start, *start.parents):
        candidate = ancestor / "shared" / "data"
        if _looks_like_data_root(candidate):
            return candidate
    return None


def resolve_data_root(root: str | os.PathLike | None = None) -> Path:
    if root is not None:
        return Path(root).expanduser()
    from_env = os.environ.get(DATA_ROOT_ENV)
    if from_env:
        return Path(from_env).expanduser()
    for start in (Path.cwd().resolve(), Path(__file__).resolve().parent):
        found = _shared_data_beside(start)
        if found is not None:
            return found
    return user_cache_dir() / "data"


def dataset_dir(spec: DatasetSpec, root: str | os.PathLike | None = None) -> Path:
    return resolve_data_root(root) / spec.folder


def missing_files(spec: DatasetSpec, root: str | os.PathLike | None = None) -> list[Path]:
    folder = dataset_dir(spec, root)
    return [folder / data_file.path for data_file in spec.files if not (folder / data_file.path).is_file()]


def is_available(spec: DatasetSpec, root: str | os.PathLike | None = None) -> bool:
    return not missing_files(spec, root)
