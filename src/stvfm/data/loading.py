"""``load_series``: one entry point for a registered dataset name or a generic file path."""

from __future__ import annotations

import os
from pathlib import Path

from stvfm.data.checksums import verify_sha256
from stvfm.data.paths import dataset_dir, missing_files
from stvfm.data.registry import DatasetSpec, get_dataset, is_registered, list_datasets
from stvfm.data.series import GridSeries
from stvfm.data.sources import read_generic, read_registered
from stvfm.errors import ConfigError, DataError


def _missing_message(spec: DatasetSpec, missing: list[Path]) -> str:
    names = ", ".join(path.name for path in missing)
    return (
        f"{missing[0].parent}: dataset {spec.name!r} needs {names} there; get it from "
        f"{spec.download_page} (or run `stvfm data fetch {spec.name}` where a direct link is known), "
        f"or point STVFM_DATA_ROOT at a folder holding {spec.folder}/"
    )


def load_registered(spec: DatasetSpec, root: str | os.PathLike | None = None, verify: bool = True) -> GridSeries:
    missing = missing_files(spec, root)
    if missing:
        raise DataError(_missing_message(spec, missing))
    folder = dataset_dir(spec, root)
    if verify:
        for data_file in spec.files:
            if data_file.sha256 is not None:
                verify_sha256(folder / data_file.path, data_file.sha256)
    return read_registered(spec, folder)


def load_series(
    name_or_path: str | os.PathLike,
    root: str | os.PathLike | None = None,
    channel: int | str | None = None,
    steps: int | None = None,
    verify: bool = True,
) -> GridSeries:
    """A registered dataset by name, or a generic file by path; optionally one channel and the first ``steps``.

    ``steps=None`` takes the dataset's default (the paper's period, e.g. TaxiNYC-1's
    60 days) or the whole series for a file.
    """
    text = os.fspath(name_or_path)
    if is_registered(text):
        spec = get_dataset(text)
        series = load_registered(spec, root, verify)
        if spec.period is not None:
            series = series.between(*spec.period)
        steps = spec.default_steps if steps is None else steps
    elif Path(text).exists():
        series = read_generic(text)
    elif Path(text).suffix:
        raise DataError(f"{text}: file not found")
    else:
        known = ", ".join(spec.name for spec in list_datasets())
        raise ConfigError(f"unknown dataset {text!r} and no such file; known datasets: {known}")
    series = series.select_channels(channel)
    if steps is not None:
        if steps < 1:
            raise ConfigError(f"steps must be positive, got {steps}")
        if steps > series.values.shape[0]:
            raise DataError(f"{series.source or series.name}: asked for {steps} steps but the series has {series.values.shape[0]}")
        series = series.head(steps)
    return series
