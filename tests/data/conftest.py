"""Data-layer fixtures: an isolated user cache, and small synthetic series with checkable content."""

from __future__ import annotations

import numpy as np
import pytest

from stvfm.data.series import GridSeries


@pytest.fixture(scope="session", autouse=True)
def isolated_user_cache(tmp_path_factory):
    """Keep the checksum cache and data-root fallback out of the real home directory."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg_cache")))
        patch.delenv("STVFM_DATA_ROOT", raising=False)
        yield


def make_series(steps: int = 100, channels: int = 1, height: int = 4, width: int = 3, interval_minutes: int = 60,
                start: str = "2021-03-01T00:00") -> GridSeries:
    """values[t, c, i, j] = t + 1000 c + 10 i + j/10, so any slice tells where it came from."""
    t, c, i, j = np.meshgrid(np.arange(steps), np.arange(channels), np.arange(height), np.arange(width), indexing="ij")
    values = (t + 1000 * c + 10 * i + j / 10).astype(np.float32)
    timestamps = np.datetime64(start, "s") + np.arange(steps) * np.timedelta64(interval_minutes * 60, "s")
    return GridSeries(
        name="synthetic",
        values=values,
        timestamps=timestamps,
        interval_minutes=interval_minutes,
        channel_names=tuple(f"c{k}" for k in range(channels)),
        source="synthetic.npz",
    )


@pytest.fixture
def series_factory():
    return make_series
