"""Hostile files: every loader either returns a valid result or raises an ``StvfmError`` naming the file.

Never another exception type (ValueError, KeyError, zipfile.BadZipFile, OSError, ...), and a
checkpoint whose pickle would run code is refused without running it.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from robust_helpers import write_tiny_city

from stvfm.data.loading import load_series
from stvfm.data.prepared import prepare_data
from stvfm.data.registry import get_dataset
from stvfm.data.series import GridSeries
from stvfm.data.sources.stresnet_h5 import read_stresnet_h5
from stvfm.errors import CheckpointError, DataError, StvfmError
from stvfm.training.checkpoints import load_checkpoint

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
START = np.datetime64("2024-01-01T00:00", "s")

# ---------------------------------------------------------------- strategies


@st.composite
def value_arrays(draw):
    """Any rank 0-6, small (possibly zero) sizes, any dtype family, sometimes NaN/inf."""
    rank = draw(st.integers(0, 6))
    if rank == 4 and draw(st.booleans()):  # often a plausible (T, C, H, W) with T around the protocol's needs
        shape = (draw(st.sampled_from([0, 1, 2, 11, 30, 60, 100])), draw(st.integers(0, 2)),
                 draw(st.integers(0, 3)), draw(st.integers(1, 3)))
    else:
        shape = tuple(draw(st.lists(st.integers(0, 4), min_size=rank, max_size=rank)))
    kind = draw(st.sampled_from(["float32", "float64", "int64", "uint8", "bool", "complex64", "str", "object", "datetime"]))
    size = int(np.prod(shape))
    seed = draw(st.integers(0, 2**16))
    numbers = np.random.default_rng(seed).normal(5, 3, size=size).reshape(shape)
    if kind == "str":
        return numbers.astype(str)
    if kind == "object":
        return numbers.astype(object)
    if kind == "datetime":
        return numbers.astype("int64").astype("datetime64[s]")
    if kind == "bool":
        return numbers > 5
    array = numbers.astype(kind)
    if kind.startswith("float") and size and draw(st.booleans()):
        array.flat[draw(st.integers(0, size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return array


def timestamp_arrays(length: int):
    """Right, wrong and missing timestamps for a series of ``length`` steps."""
    regular = START + np.arange(length) * np.timedelta64(3600, "s")
    step = lambda seconds: START + np.arange(length) * np.timedelta64(seconds, "s")  # noqa: E731
    swapped = regular.copy()
    if length > 2:
        swapped[[0, 1]] = swapped[[1, 0]]
    duplicated = regular.copy()
    if length > 2:
        duplicated[2] = duplicated[1]
    return st.sampled_from([
        ("regular", regular),
        ("iso strings", regular.astype(str)),
        ("missing", None),
        ("one too few", regular[:-1]),
        ("one too many", START + np.arange(length + 1) * np.timedelta64(3600, "s")),
        ("unsorted", swapped),
        ("duplicated", duplicated),
        ("reversed", regular[::-1].copy()),
        ("30 s step", step(30)),
        ("zero step", step(0)),
        ("irregular", regular + (np.arange(length) % 3).astype("timedelta64[m]")),
        ("NaT", np.where(np.arange(length) == 1, np.datetime64("NaT"), regular).astype("datetime64[s]")),
        ("garbage strings", np.array(["not a date"] * length)),
        ("integers", np.arange(length) * 3600),
        ("floats", np.arange(length) * 0.5),
        ("2-D", np.stack([regular, regular])),
        ("scalar", np.array(START)),
        ("complex", np.arange(length) + 1j),
    ])


extras = st.fixed_dictionaries({}, optional={
    "channel_names": st.sampled_from([np.array(["a"]), np.array(["a", "b", "c"]), np.array("solo"),
                                      np.array([1, 2]), np.array(7), np.zeros((2, 2)), np.array([], dtype=str)]),
    "interval_minutes": st.sampled_from([np.int64(60), np.int64(0), np.int64(-5), np.float64(np.nan),
                                         np.array([60, 60]), np.array("hourly"), np.float64(1e30),
                                         np.array([], dtype=np.int64), np.complex64(60)]),
})


@st.composite
def npz_contents(draw):
    values = draw(value_arrays())
    length = values.shape[0] if values.ndim else 1
    label, timestamps = draw(timestamp_arrays(length))
    arrays = {"values": values} if draw(st.integers(0, 9)) else {}
    if timestamps is not None:
        arrays["timestamps"] = timestamps
    arrays.update(draw(extras))
    return label, arrays


def _write_npz(path: Path, arrays: dict) -> None:
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)  # object arrays are pickled: the loader must refuse them, not unpickle


def _assert_valid_series(series: GridSeries) -> None:
    values, stamps = series.values, series.timestamps
    assert values.dtype == np.float32 and values.ndim == 4 and min(values.shape) > 0
    assert not np.isinf(values).any() and not np.isnan(values).all()  # NaN marks a missing value
    assert stamps.shape == (values.shape[0],) and not np.isnat(stamps).any()
    if len(stamps) > 1:
        steps = np.diff(stamps.astype("datetime64[s]").astype(np.int64))
        assert (steps == series.interval_minutes * 60).all()
    assert len(series.channel_names) == values.shape[1] and series.interval_minutes > 0


def _expect_result_or_stvfm_error(call, where: Path):
    try:
        return call()
    except StvfmError as error:
        message = str(error)
        assert str(where) in message, f"error does not name the file: {message}"
        assert len(message.splitlines()) == 1, message
        return None
    # any other exception type propagates and fails the test with its traceback


# ---------------------------------------------------------------- generic npz


@SETTINGS
@given(case=npz_contents())
def test_malformed_generic_npz_loads_or_raises_stvfm_error(tmp_path_factory, case):
    label, arrays = case
    path = tmp_path_factory.mktemp("npz") / "city.npz"
    _write_npz(path, arrays)
    series = _expect_result_or_stvfm_error(lambda: load_series(path), path)
    if series is not None:
        _assert_valid_series(series)
        np.testing.assert_array_equal(series.values, np.asarray(arrays["values"], dtype=np.float32))
    prepared = _expect_result_or_stvfm_error(lambda: prepare_data(path), path)
    if prepared is not None:
        assert series is not None, "prepare_data accepted what load_series refused"
        assert np.isfinite(prepared.values).all()
        assert all(len(prepared.dataset(split)) > 0 for split in ("train", "val", "test"))


@pytest.mark.parametrize(("label", "length"), [("no step", 1), ("too short for a window per split", 30)])
def test_series_shorter_than_the_protocol_is_a_data_error(tmp_path, label, length):
    path = tmp_path / "short.npz"
    values = np.ones((length, 1, 2, 2), dtype=np.float32)
    _write_npz(path, {"values": values, "timestamps": START + np.arange(length) * np.timedelta64(3600, "s"),
                      "interval_minutes": np.int64(60)})
    assert load_series(path).values.shape[0] == length
    with pytest.raises(DataError, match="short.npz: series of .* steps"):
        prepare_data(path)


@SETTINGS
@given(blob=st.binary(min_size=0, max_size=2048), cut=st.floats(0.0, 0.99))
def test_random_bytes_and_truncated_npz_are_data_errors(tmp_path_factory, tiny_npz_bytes, blob, cut):
    folder = tmp_path_factory.mktemp("bytes")
    for name, content in (("random.npz", blob), ("truncated.npz", tiny_npz_bytes[: int(cut * len(tiny_npz_bytes))]),
                          ("random.nc", blob)):
        path = folder / name
        path.write_bytes(content)
        with pytest.raises(StvfmError, match=name):
            load_series(path)


def test_a_zip_that_is_not_an_npz_is_a_data_error(tmp_path):
    path = tmp_path / "fake.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("values.npy", b"\x93NUMPY garbage header")
        archive.writestr("timestamps.npy", b"")
    with pytest.raises(DataError, match="fake.npz"):
        load_series(path)


@pytest.fixture(scope="module")
def tiny_npz_bytes(tmp_path_factory) -> bytes:
    return write_tiny_city(tmp_path_factory.mktemp("good") / "city.npz", days=2).read_bytes()


# ---------------------------------------------------------------- STResNet HDF5


@SETTINGS
@given(values=value_arrays(), labels=st.sampled_from(["good", "bad text", "bad slot", "short", "ints", "2-D", "floats"]))
def test_malformed_stresnet_h5_loads_or_raises_stvfm_error(tmp_path_factory, values, labels):
    path = tmp_path_factory.mktemp("h5") / "NYC14_M16x8_T60_NewEnd.h5"
    length = values.shape[0] if values.ndim else 1
    assume(length > 0)  # zero steps: a known raw ValueError, see test_an_empty_stresnet_h5_is_a_data_error
    days = np.datetime64("2014-04-01") + np.arange(length) // 24
    good = np.array([f"{str(d).replace('-', '')}{h % 24 + 1:02d}".encode() for h, d in enumerate(days)])
    date = {"good": good, "bad text": np.array([b"yesterday"] * length), "bad slot": np.array([b"2014040199"] * length),
            "short": good[:-1], "ints": good.astype(np.int64) if length else np.zeros(0, np.int64),
            "2-D": np.stack([good, good]), "floats": np.arange(length, dtype=float)}[labels]
    with h5py.File(path, "w") as handle:
        if values.dtype.kind not in "OUM":  # h5py stores only plain numbers here
            handle["data"] = values
        handle["date"] = date
    series = _expect_result_or_stvfm_error(lambda: read_stresnet_h5(path, get_dataset("bikenyc1")), path)
    if series is not None:
        _assert_valid_series(series)


def test_an_empty_stresnet_h5_is_a_data_error(tmp_path):
    path = tmp_path / "empty.h5"
    with h5py.File(path, "w") as handle:
        handle["data"] = np.zeros((0, 2, 4, 4), dtype=np.float32)
        handle["date"] = np.zeros(0, dtype="S10")
    with pytest.raises(DataError, match="empty.h5"):
        read_stresnet_h5(path, get_dataset("bikenyc1"))


@SETTINGS
@given(blob=st.binary(min_size=0, max_size=2048))
def test_random_bytes_as_a_registered_h5_dataset_are_data_errors(tmp_path_factory, blob):
    root = tmp_path_factory.mktemp("root")
    path = root / "bikenyc" / "NYC14_M16x8_T60_NewEnd.h5"
    path.parent.mkdir(parents=True)
    path.write_bytes(blob)
    with pytest.raises(DataError, match="NYC14_M16x8_T60_NewEnd.h5"):
        load_series("bikenyc1", root=root)  # checksum
    with pytest.raises(DataError, match="NYC14_M16x8_T60_NewEnd.h5"):
        load_series("bikenyc1", root=root, verify=False)  # the reader itself


# ---------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def real_checkpoint_bytes() -> bytes:
    buffer = io.BytesIO()
    torch.save({"state_dict": {"model.w": torch.ones(64, 64)}, "stvfm": {"run": {}, "data": {}}, "epoch": 3}, buffer)
    return buffer.getvalue()


@SETTINGS
@given(blob=st.binary(min_size=0, max_size=4096), cut=st.floats(0.0, 0.99))
def test_random_and_truncated_checkpoints_are_checkpoint_errors(tmp_path_factory, real_checkpoint_bytes, blob, cut):
    folder = tmp_path_factory.mktemp("ckpt")
    for name, content in (("random.ckpt", blob),
                          ("truncated.ckpt", real_checkpoint_bytes[: int(cut * len(real_checkpoint_bytes))])):
        path = folder / name
        path.write_bytes(content)
        with pytest.raises(CheckpointError, match=name) as raised:
            load_checkpoint(path)
        assert len(str(raised.value).splitlines()) == 1


@pytest.mark.parametrize("content", [[1, 2, 3], {"state_dict": {}}, {"stvfm": {}}, torch.ones(3)])
def test_foreign_torch_files_are_checkpoint_errors(tmp_path, content):
    path = tmp_path / "foreign.ckpt"
    torch.save(content, path)
    with pytest.raises(CheckpointError, match="foreign.ckpt: not an stvfm checkpoint"):
        load_checkpoint(path)


class _Payload:
    """Unpickling this would create the marker file: what a malicious checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("where", ["top", "inside state_dict"])
def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(tmp_path, where):
    marker = tmp_path / "pwned"
    payload = _Payload(marker)
    content = ({"state_dict": {"model.w": payload}, "stvfm": {"run": {}, "data": {}}} if where != "top"
               else payload)
    path = tmp_path / "evil.ckpt"
    torch.save(content, path)
    with pytest.raises(CheckpointError, match="evil.ckpt: not a readable stvfm checkpoint") as raised:
        load_checkpoint(path)
    assert len(str(raised.value).splitlines()) == 1
    assert not marker.exists(), "unpickling ran the payload"


def test_a_missing_checkpoint_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="nowhere.ckpt: checkpoint not found"):
        load_checkpoint(tmp_path / "nowhere.ckpt")
    (tmp_path / "folder.ckpt").mkdir()
    with pytest.raises(CheckpointError, match="folder.ckpt"):
        load_checkpoint(tmp_path / "folder.ckpt")
