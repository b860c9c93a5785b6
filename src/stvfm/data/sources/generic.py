"""The generic format for users' own grids (and for ``stvfm predict --input``).

- ``.npz``: ``values`` (T, C, H, W) numbers; ``timestamps`` (T,) ISO strings or
  datetime64; optional ``channel_names`` (C,) strings, ``interval_minutes`` (needed
  only when T = 1, otherwise inferred from the timestamps) and ``metadata``, one JSON
  string saying how the grid was made (``stvfm data grid`` writes it; read into
  ``series.attrs["metadata"]``).
- NetCDF (``.nc``) or zarr (``.zarr``), read with xarray: the variable ``values`` (or the
  file's only data variable) with dims ``time``, ``channel``, ``y``, ``x`` (any order);
  ``time`` coordinate as datetimes, optional ``channel`` coordinate of names, optional
  attribute ``interval_minutes``.
"""

from __future__ import annotations

import json
import math
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from stvfm.atomic import atomic_path
from stvfm.data.series import GridSeries
from stvfm.errors import DataError, DataWarning

NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf", ".cdf")
ZARR_SUFFIX = ".zarr"
GENERIC_SUFFIXES = (".npz", *NETCDF_SUFFIXES, ZARR_SUFFIX)
DIMS = ("time", "channel", "y", "x")
#: The most bytes deflate can expand one byte to (zlib's limit is about 1032:1).
DEFLATE_MAX_RATIO = 1032


#: Epoch units integer timestamps may be in, coarsest first, and the latest date (in seconds) they may give:
#: the unit is the coarsest that puts the first timestamp between 1970 and 2200.
EPOCH_UNITS = ("s", "ms", "us", "ns")
LATEST_EPOCH_SECONDS = 7_258_118_400  # 2200-01-01


def _epoch_timestamps(raw: np.ndarray, where: Path) -> np.ndarray:
    """Integer timestamps as seconds, milliseconds, micro- or nanoseconds since 1970, told apart by size
    (read as seconds, epoch milliseconds would land in year 55969)."""
    first = int(raw.flat[0]) if raw.size else 0
    for power, unit in enumerate(EPOCH_UNITS):
        if 0 <= first < LATEST_EPOCH_SECONDS * 1000**power:
            return raw.astype(f"datetime64[{unit}]")
    raise DataError(f"{where}: integer timestamps like {first} are no epoch time between 1970 and 2200 in "
                    f"seconds, milliseconds, micro- or nanoseconds; store ISO strings or datetime64")


def _parse_timestamps(raw: np.ndarray, where: Path) -> np.ndarray:
    raw = np.asarray(raw)
    if raw.dtype.kind == "f":
        raise DataError(f"{where}: timestamps are floating-point numbers ({raw.flat[0] if raw.size else ''}...), "
                        "which hold no exact time; store ISO strings, datetime64 or integer epoch time")
    try:
        if raw.dtype.kind in "iu":
            timestamps = _epoch_timestamps(raw, where).astype("datetime64[s]")
        else:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                timestamps = raw.astype("datetime64[s]")
            if any("timezone" in str(warning.message) for warning in caught):
                _warn_of_offsets(raw, where)
    except (TypeError, ValueError, OverflowError) as error:
        raise DataError(f"{where}: timestamps are not ISO date-times or datetime64 ({error})") from None
    if timestamps.ndim != 1:
        raise DataError(f"{where}: timestamps should be one-dimensional, got shape {timestamps.shape}")
    if np.isnat(timestamps).any():
        raise DataError(f"{where}: timestamps contain missing values (NaT)")
    return timestamps


def _warn_of_offsets(raw: np.ndarray, where: Path) -> None:
    """ISO times with a UTC offset are read in UTC: said once, in one line, where the offset is not zero
    (the calendar features, weekday and slot of day, are then UTC's, not the city's)."""
    texts = [str(value) for value in raw.flat[:1000]]
    if any(not text.endswith(("Z", "+00:00", "+0000")) for text in texts):
        warnings.warn(f"{where}: timestamps carry a UTC offset ({texts[0]}); they are read in UTC, so weekday "
                      "and slot of day are UTC's; store local times without offset for the city's calendar",
                      DataWarning, stacklevel=4)


def _interval_minutes(timestamps: np.ndarray, declared: int | None, where: Path) -> int:
    if len(timestamps) < 2:
        if declared is None:
            raise DataError(f"{where}: a single time step needs 'interval_minutes' to be given")
        return int(declared)
    seconds = int((timestamps[1] - timestamps[0]).astype(np.int64))
    if seconds <= 0 or seconds % 60:
        raise DataError(f"{where}: first timestamp step is {seconds} s; steps must be positive whole minutes")
    return seconds // 60


def _check_values(values: np.ndarray, where: Path) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 4:
        raise DataError(f"{where}: values should be 4-D (time, channel, y, x), got shape {values.shape}")
    if values.dtype == bool or not np.issubdtype(values.dtype, np.number) or np.iscomplexobj(values):
        raise DataError(f"{where}: values must be real numbers, got dtype {values.dtype}")
    if values.shape[0] == 0:
        raise DataError(f"{where}: values have zero time steps")
    return values


def _series(where: Path, values, timestamps, channel_names, declared_interval, attrs: dict | None = None) -> GridSeries:
    values = _check_values(values, where)
    timestamps = _parse_timestamps(timestamps, where)
    if channel_names is None:
        channel_names = tuple(f"channel-{i}" for i in range(values.shape[1]))
    return GridSeries(
        name=where.stem,
        values=values,
        timestamps=timestamps,
        interval_minutes=_interval_minutes(timestamps, declared_interval, where),
        channel_names=tuple(str(channel) for channel in channel_names),
        source=str(where),
        attrs=attrs or {},
    )


def _declared_interval(raw: np.ndarray | None, where: Path) -> int | None:
    if raw is None:
        return None
    value = np.asarray(raw)
    if value.shape != () or value.dtype.kind not in "iuf" or not np.isfinite(value) or value != np.round(value) \
            or not 0 < value < 2**31:
        raise DataError(f"{where}: 'interval_minutes' should be one positive whole number, got {value.tolist()!r}"[:300])
    return int(value)


def _channel_names(raw: np.ndarray | None, where: Path) -> list | None:
    if raw is not None and raw.ndim != 1:
        raise DataError(f"{where}: 'channel_names' should be one-dimensional, got shape {raw.shape}")
    return None if raw is None else raw.tolist()


def _metadata(raw: np.ndarray | None, where: Path) -> dict:
    if raw is None:
        return {}
    try:
        return {"metadata": json.loads(str(raw.item()))}
    except (ValueError, TypeError):
        raise DataError(f"{where}: 'metadata' should be one JSON string") from None


def _check_declared_sizes(source: Path | BinaryIO, where: str | Path, max_bytes: int | None = None) -> None:
    """Refuse an array whose header claims more bytes than its member holds, before numpy allocates them,
    and (with ``max_bytes``) an archive that would unpack to more than that."""
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    archive_bytes = source.stat().st_size if isinstance(source, Path) else source.seek(0, 2)
    with zipfile.ZipFile(source) as archive:
        members = archive.infolist()
        unpacked = sum(member.file_size for member in members)
        if max_bytes is not None and unpacked > max_bytes:
            raise DataError(f"{where}: unpacks to {unpacked:,} bytes, over the limit of {max_bytes:,}")
        for member in members:
            # the zip directory's sizes are claims too: a member cannot hold more than its compressed bytes give
            most = member.compress_size if member.compress_type == zipfile.ZIP_STORED \
                else member.compress_size * DEFLATE_MAX_RATIO + 1024
            if member.compress_size > archive_bytes or member.file_size > most:
                raise DataError(f"{where}: member {member.filename!r} claims {member.file_size:,} bytes, more than "
                                f"its {member.compress_size:,} compressed bytes in a {archive_bytes:,}-byte file can hold")
            with archive.open(member) as handle:
                version = np.lib.format.read_magic(handle)
                if version not in readers:
                    continue  # numpy refuses it itself
                shape, _, dtype = readers[version](handle)
            claimed = math.prod(shape) * dtype.itemsize
            if claimed > member.file_size:
                raise DataError(f"{where}: array {member.filename!r} claims shape {shape} ({claimed:,} bytes) "
                                f"but holds {member.file_size:,} bytes")


def read_npz_arrays(source: Path | BinaryIO, where: str | Path, max_bytes: int | None = None) -> dict[str, np.ndarray]:
    """Every array of an npz (a file or an uploaded stream), never unpickling, checked before it is unpacked."""
    try:
        _check_declared_sizes(source, where, max_bytes)
        if not isinstance(source, Path):
            source.seek(0)
        with np.load(source, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    # empty, truncated or foreign files fail in numpy, zipfile or zlib with these types
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"{where}: not a readable npz file ({reason[:200]})") from None


def _read_npz(path: Path) -> GridSeries:
    arrays = read_npz_arrays(path, path)
    for key in ("values", "timestamps"):
        if key not in arrays:
            raise DataError(f"{path}: missing array {key!r}; the generic npz needs 'values' and 'timestamps'")
    return _series(
        path,
        arrays["values"],
        arrays["timestamps"],
        _channel_names(arrays.get("channel_names"), path),
        _declared_interval(arrays.get("interval_minutes"), path),
        _metadata(arrays.get("metadata"), path),
    )


def _open_xarray(path: Path):
    import xarray as xr

    try:
        if path.suffix == ZARR_SUFFIX:
            return xr.open_zarr(path)
        return xr.open_dataset(path)
    except ImportError as error:
        hint = "; install zarr to read .zarr stores" if path.suffix == ZARR_SUFFIX else ""
        raise DataError(f"{path}: no xarray backend can read it ({error}){hint}") from None
    except (OSError, ValueError) as error:  # xarray adds lines of hints about engines: keep the reason
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise DataError(f"{path}: not a readable NetCDF/zarr file ({reason[:200]})") from None


def _read_xarray(path: Path) -> GridSeries:
    with _open_xarray(path) as dataset:
        names = list(dataset.data_vars)
        if "values" in names:
            variable = dataset["values"]
        elif len(names) == 1:
            variable = dataset[names[0]]
        else:
            raise DataError(f"{path}: several data variables {names}; name the grid variable 'values'")
        if set(variable.dims) != set(DIMS):
            raise DataError(f"{path}: variable {variable.name!r} has dims {variable.dims}, expected {DIMS}")
        variable = variable.transpose(*DIMS)
        if "time" not in variable.coords:
            raise DataError(f"{path}: variable {variable.name!r} has no 'time' coordinate")
        channel_names = variable.coords["channel"].values.tolist() if "channel" in variable.coords else None
        declared = variable.attrs.get("interval_minutes", dataset.attrs.get("interval_minutes"))
        return _series(
            path,
            variable.values,
            variable.coords["time"].values,
            channel_names,
            _declared_interval(declared, path),
        )


def read_generic(path: str | Path) -> GridSeries:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not (path.is_file() or path.is_dir()):  # a pipe or device would block or never end
        raise DataError(f"{path}: not a regular file (a pipe, socket or device)")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _read_npz(path)
    if suffix in NETCDF_SUFFIXES or suffix == ZARR_SUFFIX:
        return _read_xarray(path)
    raise DataError(f"{path}: unknown file type {suffix!r}; use one of {', '.join(GENERIC_SUFFIXES)}")


def save_generic_npz(series: GridSeries, path: str | Path, metadata: dict | None = None) -> Path:
    """Write ``series`` in the generic npz format (readable by ``read_generic``), with ``metadata`` as JSON."""
    path = Path(path)
    extra = {} if metadata is None else {"metadata": np.array(json.dumps(metadata))}
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(
            handle,
            values=series.values,
            timestamps=series.timestamps.astype("datetime64[s]"),
            channel_names=np.array(series.channel_names, dtype=str),
            interval_minutes=np.int64(series.interval_minutes),
            **extra,
        )
    return path
