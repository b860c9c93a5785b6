"""STResNet's HDF5 layout (BikeNYC, TaxiBJ): ``data`` (T, C, H, W) and ``date`` slot labels.

``date`` holds bytes ``YYYYMMDDSS`` where SS is the 1-based slot of the day
(01..24 for hourly data, 01..48 for half-hourly).
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from stvfm.data.registry import DatasetSpec
from stvfm.data.series import GridSeries
from stvfm.errors import DataError


def _timestamps_from_slots(labels: np.ndarray, interval_minutes: int, where: Path) -> np.ndarray:
    slots_per_day = (24 * 60) // interval_minutes
    try:
        text = [label.decode("ascii") if isinstance(label, bytes) else str(label) for label in labels]
        days = np.array([f"{t[0:4]}-{t[4:6]}-{t[6:8]}" for t in text], dtype="datetime64[D]")
        slots = np.array([int(t[8:]) for t in text], dtype=np.int64)
    except (ValueError, UnicodeDecodeError) as error:
        raise DataError(f"{where}: 'date' entries are not YYYYMMDDSS slot labels ({error})") from None
    if slots.min() < 1 or slots.max() > slots_per_day:
        raise DataError(f"{where}: 'date' slots run {slots.min()}..{slots.max()}, expected 1..{slots_per_day} for {interval_minutes}-minute data")
    return days.astype("datetime64[s]") + ((slots - 1) * interval_minutes * 60).astype("timedelta64[s]")


def read_stresnet_h5(path: Path, spec: DatasetSpec) -> GridSeries:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with h5py.File(path, "r") as handle:
            if "data" not in handle or "date" not in handle:
                raise DataError(f"{path}: expected HDF5 datasets 'data' and 'date', found {sorted(handle)}")
            values = np.asarray(handle["data"])
            labels = np.asarray(handle["date"])
    except OSError as error:
        raise DataError(f"{path}: not a readable HDF5 file ({error})") from None
    if values.ndim != 4:
        raise DataError(f"{path}: 'data' should be (time, channel, y, x), got shape {values.shape}")
    if values.shape[0] == 0:
        raise DataError(f"{path}: empty series, 'data' has shape {values.shape}")
    if labels.shape != (values.shape[0],):
        raise DataError(f"{path}: {labels.shape[0] if labels.ndim else 0} 'date' entries for {values.shape[0]} time steps")
    return spec.series(values, _timestamps_from_slots(labels, spec.interval_minutes, path), path)
