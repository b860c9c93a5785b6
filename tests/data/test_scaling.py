import numpy as np
import pytest
import torch

from stvfm.data.scaling import MinMaxScaler, clamp_scaled
from stvfm.errors import ConfigError, DataError


def test_fit_maps_range_to_minus_one_one():
    values = np.array([[2.0, 5.0], [8.0, 3.0]], dtype=np.float32)
    scaler = MinMaxScaler.fit(values)
    scaled = scaler.transform(values)
    assert scaled.dtype == np.float32
    assert scaled.min() == -1.0 and scaled.max() == 1.0
    np.testing.assert_allclose(scaler.inverse_transform(scaled), values, rtol=1e-6)


def test_round_trip_on_torch_keeps_type_and_dtype():
    scaler = MinMaxScaler(minimum=-3.0, maximum=17.0)
    values = torch.linspace(-3, 17, 11, dtype=torch.float32)
    scaled = scaler.transform(values)
    assert isinstance(scaled, torch.Tensor) and scaled.dtype == torch.float32
    torch.testing.assert_close(scaled[[0, 5, 10]], torch.tensor([-1.0, 0.0, 1.0]))
    torch.testing.assert_close(scaler.inverse_transform(scaled), values)
    assert MinMaxScaler.fit(values) == scaler


def test_constant_series_does_not_divide_by_zero():
    scaler = MinMaxScaler.fit(np.full((3, 3), 7.0))
    scaled = scaler.transform(np.full(4, 7.0))
    assert np.isfinite(scaled).all()
    np.testing.assert_allclose(scaler.inverse_transform(scaled), 7.0)


def test_clamp_scaled_numpy_and_torch():
    np.testing.assert_array_equal(clamp_scaled(np.array([-2.0, 0.5, 3.0])), [-1.0, 0.5, 1.0])
    torch.testing.assert_close(clamp_scaled(torch.tensor([-2.0, 0.5, 3.0])), torch.tensor([-1.0, 0.5, 1.0]))


def test_dict_round_trip_and_errors():
    scaler = MinMaxScaler(1.5, 9.0)
    assert MinMaxScaler.from_dict(scaler.to_dict()) == scaler
    with pytest.raises(ConfigError):
        MinMaxScaler.from_dict({"minimum": 1.0})
    with pytest.raises(ConfigError):
        MinMaxScaler(5.0, 1.0)
    with pytest.raises(DataError):
        MinMaxScaler.fit(np.zeros(0))
