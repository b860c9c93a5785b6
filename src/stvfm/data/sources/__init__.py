"""One reader per file format; ``read_registered`` picks the one a dataset spec names."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from stvfm.data.registry import DatasetSpec
from stvfm.data.series import GridSeries
from stvfm.data.sources.dsan_npz import read_dsan_npz
from stvfm.data.sources.generic import read_generic, save_generic_npz
from stvfm.data.sources.stresnet_h5 import read_stresnet_h5
from stvfm.data.sources.unist_json import read_unist_json
from stvfm.errors import ConfigError

__all__ = ["read_registered", "read_generic", "save_generic_npz", "SOURCE_READERS"]


#: Each format's reader of a dataset's folder: formats of one file read the spec's first file.
SOURCE_READERS: dict[str, Callable[[DatasetSpec, Path], GridSeries]] = {
    "stresnet_h5": lambda spec, folder: read_stresnet_h5(folder / spec.files[0].path, spec),
    "dsan_npz": lambda spec, folder: read_dsan_npz(folder, spec),
    "unist_json": lambda spec, folder: read_unist_json(folder / spec.files[0].path, spec),
}


def read_registered(spec: DatasetSpec, folder: Path) -> GridSeries:
    if spec.source_format not in SOURCE_READERS:
        raise ConfigError(f"dataset {spec.name!r}: no reader for source format {spec.source_format!r}")
    return SOURCE_READERS[spec.source_format](spec, folder)
