"""The tiny synthetic city every export test fits its runs on."""

from __future__ import annotations

from pathlib import Path

import pytest

from stvfm.testing import write_synthetic_city


@pytest.fixture(scope="session")
def city(tmp_path_factory) -> Path:
    """Five days of hourly counts on a 4 x 2 grid: few windows, few ARIMA cells."""
    return write_synthetic_city(tmp_path_factory.mktemp("city") / "city.npz", days=5, height=4, width=2)


@pytest.fixture(scope="session")
def long_city(tmp_path_factory) -> Path:
    """The same grid over three weeks: room for the models that read the same steps weeks earlier."""
    return write_synthetic_city(tmp_path_factory.mktemp("city") / "long-city.npz", days=22, height=4, width=2)

