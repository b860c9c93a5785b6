"""The two real datasets beside the project, in their original formats (loaded once per module)."""

import shutil

import numpy as np
import pytest

from stvfm.data.loading import load_series
from stvfm.data.registry import get_dataset
from stvfm.data.sources.dsan_npz import read_dsan_npz
from stvfm.errors import DataError


@pytest.fixture(scope="module")
def bikenyc1(shared_data_dir):
    return load_series("bikenyc1", root=shared_data_dir, channel=None)


@pytest.fixture(scope="module")
def taxinyc1_full(shared_data_dir):
    return load_series("taxinyc1", root=shared_data_dir, channel=None, steps=4320)


def test_bikenyc1(bikenyc1):
    assert bikenyc1.shape == (4392, 2, 16, 8)
    assert bikenyc1.timestamps[0] == np.datetime64("2014-04-01T00:00")
    assert bikenyc1.timestamps[-1] == np.datetime64("2014-09-30T23:00")
    assert bikenyc1.interval_minutes == 60
    assert bikenyc1.values.dtype == np.float32
    assert bikenyc1.values.min() == 0 and bikenyc1.values.max() == 267
    assert bikenyc1.channel_names == ("new-flow", "end-flow")


def test_taxinyc1(taxinyc1_full, shared_data_dir):
    assert taxinyc1_full.shape == (4320, 2, 16, 12)
    assert taxinyc1_full.timestamps[0] == np.datetime64("2016-01-01T00:00")
    assert taxinyc1_full.interval_minutes == 30
    assert get_dataset("taxinyc1").default_steps == 2880
    paper_period = load_series("taxinyc1", root=shared_data_dir, channel=1)
    assert paper_period.shape == (2880, 1, 16, 12)
    assert paper_period.timestamps[-1] == np.datetime64("2016-02-29T23:30")
    np.testing.assert_array_equal(paper_period.values[:, 0], taxinyc1_full.values[:2880, 1])


def test_corrupt_copy_fails_its_checksum(shared_data_dir, tmp_path):
    folder = tmp_path / "bikenyc1"
    folder.mkdir()
    copy = folder / "NYC14_M16x8_T60_NewEnd.h5"
    shutil.copyfile(shared_data_dir / "bikenyc1" / copy.name, copy)
    with open(copy, "r+b") as handle:
        handle.seek(-100, 2)
        byte = handle.read(1)
        handle.seek(-100, 2)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(DataError, match="NYC14_M16x8_T60_NewEnd.h5: sha256 .* does not match"):
        load_series("bikenyc1", root=tmp_path)


def test_calendar_columns_must_match_the_timestamps(shared_data_dir, tmp_path):
    for path in (shared_data_dir / "taxinyc1").glob("*.npz"):
        shutil.copyfile(path, tmp_path / path.name)
    with np.load(tmp_path / "ex_knlg_val.npz") as archive:
        knowledge = archive["external_knowledge"].copy()
    knowledge[:, :7] = np.roll(knowledge[:, :7], 1, axis=1)  # every weekday one day late
    np.savez_compressed(tmp_path / "ex_knlg_val.npz", external_knowledge=knowledge)
    with pytest.raises(DataError, match="weekday/slot columns disagree .* step 2784"):
        read_dsan_npz(tmp_path, get_dataset("taxinyc1"))


def test_registered_dataset_without_files(tmp_path):
    with pytest.raises(DataError, match=r"bikenyc1: dataset 'bikenyc1' needs NYC14_M16x8_T60_NewEnd.h5"):
        load_series("bikenyc1", root=tmp_path)


def test_bikenyc1_at_the_papers_60_day_span(bikenyc1, shared_data_dir):
    """bikenyc1-60d is the same file cut to 2014-08-01..09-29, sharing bikenyc1's recipe and paper column."""
    from stvfm.data.registry import protocol_family
    from stvfm.experiments.paper import paper_figure
    from stvfm.training.recipes import published_settings

    span = load_series("bikenyc1-60d", root=shared_data_dir, channel=0)
    assert span.shape == (1440, 1, 16, 8)
    assert span.timestamps[0] == np.datetime64("2014-08-01T00:00")
    assert span.timestamps[-1] == np.datetime64("2014-09-29T23:00")
    first = int(np.searchsorted(bikenyc1.timestamps, np.datetime64("2014-08-01T00:00")))
    np.testing.assert_array_equal(span.values, bikenyc1.values[first:first + 1440, :1])
    assert span.attrs["period"] == "2014-08-01T00:00:00..2014-09-29T23:00:00"
    assert protocol_family("bikenyc1-60d") == "bikenyc1"
    assert published_settings("stvfm", "bikenyc1-60d")["model_options"] == published_settings("stvfm", "bikenyc1")["model_options"]
    assert paper_figure("main", "stvfm", "bikenyc1-60d") == (3.38, 1.20)


def test_a_period_bound_off_the_series_is_one_clear_error(bikenyc1):
    with pytest.raises(DataError, match="not a time step"):
        bikenyc1.between("2014-08-01T00:30", "2014-09-29T23:00")
