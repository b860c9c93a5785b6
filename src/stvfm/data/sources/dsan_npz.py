"""DSAN/STSAN's npz layout (TaxiNYC): ``flow_{train,val,test}.npz`` holding ``flow`` (T, H, W, C).

The three files are consecutive pieces of one series. The files carry no timestamps, so
the start comes from the dataset spec and is checked against the weekday and half-hour
one-hot columns of ``ex_knlg_*.npz`` (columns 0-6 weekday with Sunday = 0, 7-54 slot).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stvfm.data.registry import DatasetSpec
from stvfm.data.series import GridSeries
from stvfm.errors import DataError

SPLITS = ("train", "val", "test")
_WEEKDAY_COLUMNS = slice(0, 7)
_SLOT_COLUMNS = slice(7, 55)


def _load_array(path: Path, key: str) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if key not in archive.files:
                raise DataError(f"{path}: expected array {key!r}, found {archive.files}")
            return archive[key]
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: not a readable npz file ({error})") from None


def _check_calendar(folder: Path, timestamps: np.ndarray, interval_minutes: int) -> None:
    """Raise if the files' weekday/slot one-hots disagree with the timestamps we assign."""
    knowledge = np.concatenate([_load_array(folder / f"ex_knlg_{split}.npz", "external_knowledge") for split in SPLITS])
    where = folder / "ex_knlg_*.npz"
    if knowledge.ndim != 2 or knowledge.shape[0] != timestamps.shape[0] or knowledge.shape[1] < _SLOT_COLUMNS.stop:
        raise DataError(f"{where}: external knowledge shape {knowledge.shape} does not fit {timestamps.shape[0]} steps")
    days = timestamps.astype("datetime64[D]").astype(np.int64)
    sunday_first_weekday = (days + 4) % 7  # 1970-01-01 was a Thursday (4 with Sunday = 0)
    slot = (timestamps - timestamps.astype("datetime64[D]")).astype(np.int64) // (interval_minutes * 60)
    file_weekday = knowledge[:, _WEEKDAY_COLUMNS].argmax(axis=1)
    file_slot = knowledge[:, _SLOT_COLUMNS].argmax(axis=1)
    mismatch = np.flatnonzero((file_weekday != sunday_first_weekday) | (file_slot != slot))
    if mismatch.size:
        step = int(mismatch[0])
        raise DataError(
            f"{where}: weekday/slot columns disagree with the assumed start {timestamps[0]} "
            f"(first at step {step}: file says weekday {file_weekday[step]} slot {file_slot[step]})"
        )


def read_dsan_npz(folder: Path, spec: DatasetSpec) -> GridSeries:
    pieces = []
    for split in SPLITS:
        path = folder / f"flow_{split}.npz"
        flow = _load_array(path, "flow")
        if flow.ndim != 4:
            raise DataError(f"{path}: 'flow' should be (time, y, x, channel), got shape {flow.shape}")
        if pieces and flow.shape[1:] != pieces[0].shape[1:]:
            raise DataError(f"{path}: grid {flow.shape[1:]} differs from flow_train's {pieces[0].shape[1:]}")
        pieces.append(flow)
    values = np.concatenate(pieces).transpose(0, 3, 1, 2)
    step = np.timedelta64(spec.interval_minutes * 60, "s")
    timestamps = np.datetime64(spec.start, "s") + np.arange(values.shape[0]) * step
    _check_calendar(folder, timestamps, spec.interval_minutes)
    return spec.series(values, timestamps, folder / "flow_{train,val,test}.npz")
