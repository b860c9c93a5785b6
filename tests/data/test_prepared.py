import numpy as np
import pytest
import torch

from stvfm.data.datamodule import GridDataModule, default_batch_size
from stvfm.data.prepared import prepare_data, prepare_series
from stvfm.data.series import ALL_CHANNELS
from stvfm.data.sources.generic import save_generic_npz
from stvfm.data.windows import ProtocolConfig
from stvfm.errors import ConfigError, DataError


def test_scaler_fits_train_by_default_or_all_splits(series_factory):
    series = series_factory(steps=100)
    train_fit = prepare_series(series)
    assert train_fit.scaler.maximum == series.values[:70].max()
    assert train_fit.values.dtype == np.float32 and train_fit.values[:70].max() == 1.0
    unist_fit = prepare_series(series, ProtocolConfig(scaling="all"))
    assert unist_fit.scaler.maximum == series.values.max()


def test_datasets_share_the_scaled_values(series_factory):
    prepared = prepare_series(series_factory(steps=100))
    sample = prepared.dataset("val")[0]
    assert sample["x"].untyped_storage().data_ptr() == prepared.values.ctypes.data
    expected = prepared.scaler.transform(np.arange(70, 76, dtype=np.float32))
    np.testing.assert_allclose(sample["x"][:, 0, 0, 0].numpy(), expected, rtol=1e-6)


def test_forecast_shape_and_describe(series_factory):
    prepared = prepare_series(series_factory(steps=24 * 10, channels=2), ProtocolConfig(channel=ALL_CHANNELS, daily_context=1))
    shape = prepared.forecast_shape
    assert (shape.channels, shape.height, shape.width, shape.slots_per_day, shape.daily_context) == (2, 4, 3, 24, 1)
    info = prepared.describe()
    assert info["shape"] == [240, 2, 4, 3] and info["interval_minutes"] == 60
    assert info["splits"]["train"] == {"begin": 0, "end": 168, "windows": 168 - 24 + 6 - 12 + 1}
    assert info["splits"]["test"]["windows"] == 36 - 11
    assert info["scaler"] == prepared.scaler.to_dict()


def test_prepare_data_from_a_file(tmp_path, series_factory):
    path = save_generic_npz(series_factory(steps=120, channels=2), tmp_path / "city.npz")
    prepared = prepare_data(path, ProtocolConfig(channel=1, steps=100))
    assert prepared.series.shape == (100, 1, 4, 3) and prepared.series.channel_names == ("c1",)


def test_series_shorter_than_a_window_per_split(tmp_path, series_factory):
    path = save_generic_npz(series_factory(steps=60), tmp_path / "short.npz")
    with pytest.raises(DataError, match="short.npz: series of 60 steps is shorter .* split 'val' has 9 steps"):
        prepare_data(path)
    with pytest.raises(DataError, match="periodic context"):
        prepare_series(series_factory(steps=100), ProtocolConfig(weekly_context=1))
    with pytest.raises(ConfigError, match="unknown split"):
        prepare_series(series_factory(steps=100)).dataset("holdout")


def test_unist_batch_sizes():
    assert [default_batch_size(16, 8), default_batch_size(16, 20), default_batch_size(32, 32), default_batch_size(10, 20)] == [64, 32, 16, 64]


def test_datamodule_loaders(series_factory):
    prepared = prepare_series(series_factory(steps=200, height=4, width=4))
    module = GridDataModule(prepared, seed=3)
    assert (module.batch_size, module.eval_batch_size) == (64, 256)
    batch = next(iter(module.train_dataloader()))
    assert batch["x"].shape == (64, 6, 1, 4, 4) and batch["start"].max() < 140 - 11
    again = next(iter(GridDataModule(prepared, seed=3).train_dataloader()))
    assert torch.equal(batch["start"], again["start"])
    test_batch = next(iter(module.test_dataloader()))
    assert test_batch["start"].tolist() == list(range(170, 200 - 11))
    assert len(module.val_dataloader().dataset) == 30 - 11
    assert len(module.predict_dataloader().dataset) == len(module.test_dataloader().dataset)
