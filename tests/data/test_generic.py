import numpy as np
import pytest

from stvfm.data.loading import load_series
from stvfm.data.sources.generic import read_generic, save_generic_npz
from stvfm.errors import ConfigError, DataError


def test_npz_round_trip(tmp_path, series_factory):
    series = series_factory(steps=30, channels=2)
    path = save_generic_npz(series, tmp_path / "mine.npz")
    loaded = read_generic(path)
    np.testing.assert_array_equal(loaded.values, series.values)
    np.testing.assert_array_equal(loaded.timestamps, series.timestamps)
    assert loaded.interval_minutes == 60
    assert loaded.channel_names == ("c0", "c1")
    assert [p.name for p in tmp_path.iterdir()] == ["mine.npz"]  # no temporary left behind


def test_npz_with_iso_strings_and_inferred_interval(tmp_path):
    stamps = np.array(["2020-01-01T00:00", "2020-01-01T00:05", "2020-01-01T00:10"])
    np.savez(tmp_path / "iso.npz", values=np.ones((3, 1, 2, 2)), timestamps=stamps)
    series = load_series(tmp_path / "iso.npz", steps=2)
    assert series.interval_minutes == 5 and series.shape == (2, 1, 2, 2)
    assert series.channel_names == ("channel-0",)


@pytest.mark.parametrize("engine", ["scipy", "h5netcdf"])  # NetCDF-3 and NetCDF-4 (HDF5) files
def test_netcdf_round_trip(tmp_path, series_factory, engine):
    xr = pytest.importorskip("xarray")
    series = series_factory(steps=12, channels=2, interval_minutes=30)
    array = xr.DataArray(
        series.values.transpose(0, 2, 3, 1),  # any dim order is accepted
        dims=("time", "y", "x", "channel"),
        coords={"time": series.timestamps.astype("datetime64[ns]"), "channel": list(series.channel_names)},
        name="values",
    )
    path = tmp_path / "grid.nc"
    array.to_dataset().to_netcdf(path, engine=engine)
    loaded = load_series(path)
    np.testing.assert_array_equal(loaded.values, series.values)
    np.testing.assert_array_equal(loaded.timestamps, series.timestamps)
    assert loaded.interval_minutes == 30 and loaded.channel_names == ("c0", "c1")


def _write(tmp_path, name="bad.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


GOOD_TIMES = np.arange(np.datetime64("2020-01-01T00"), np.datetime64("2020-01-01T04"), np.timedelta64(1, "h"))


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"values": np.ones((4, 2, 2)), "timestamps": GOOD_TIMES}, "4-D"),
        ({"values": np.ones((0, 1, 2, 2)), "timestamps": GOOD_TIMES[:0]}, "zero time steps"),
        ({"values": np.array([[[["a"]]]] * 4), "timestamps": GOOD_TIMES}, "real numbers"),
        ({"values": np.full((4, 1, 2, 2), np.nan), "timestamps": GOOD_TIMES}, "NaN"),
        ({"values": np.full((4, 1, 2, 2), np.inf), "timestamps": GOOD_TIMES}, "infinite"),
        ({"values": np.ones((4, 1, 2, 2))}, "timestamps"),
        ({"values": np.ones((4, 1, 2, 2)), "timestamps": GOOD_TIMES[:3]}, "timestamps"),
        ({"values": np.ones((4, 1, 2, 2)), "timestamps": np.array(["soon"] * 4)}, "ISO"),
        ({"values": np.ones((4, 1, 2, 2)), "timestamps": GOOD_TIMES[::-1]}, "steps must be positive"),
        ({"values": np.ones((1, 1, 2, 2)), "timestamps": GOOD_TIMES[:1]}, "interval_minutes"),
    ],
)
def test_bad_generic_files_name_the_file(tmp_path, arrays, message):
    path = _write(tmp_path, **arrays)
    with pytest.raises(DataError, match=message) as error:
        load_series(path)
    assert "bad.npz" in str(error.value) and "\n" not in str(error.value)


def test_uneven_timestamps_are_rejected(tmp_path):
    stamps = GOOD_TIMES.copy()
    stamps[3] += np.timedelta64(1, "h")
    with pytest.raises(DataError, match="bad.npz.*evenly spaced"):
        load_series(_write(tmp_path, values=np.ones((4, 1, 2, 2)), timestamps=stamps))


def test_missing_file_unknown_type_and_unknown_name(tmp_path):
    with pytest.raises(DataError, match="nothere.npz: file not found"):
        load_series(tmp_path / "nothere.npz")
    (tmp_path / "grid.csv").write_text("1,2\n")
    with pytest.raises(DataError, match="grid.csv: unknown file type"):
        load_series(tmp_path / "grid.csv")
    with pytest.raises(ConfigError, match="unknown dataset 'bikenyc9'.*bikenyc1"):
        load_series("bikenyc9")


def test_channel_and_steps_out_of_range(tmp_path, series_factory):
    path = save_generic_npz(series_factory(steps=20, channels=2), tmp_path / "two.npz")
    assert load_series(path, channel=-1).channel_names == ("c1",)
    with pytest.raises(DataError, match="two.npz: channel 2 out of range"):
        load_series(path, channel=2)
    with pytest.raises(DataError, match="two.npz: asked for 21 steps"):
        load_series(path, steps=21)
