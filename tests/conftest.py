"""Shared fixtures: the real data folder beside the project, and tiny synthetic batches."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from stvfm.shape import ForecastShape
from stvfm.testing import make_batch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("STVFM_TEST_DATA", REPO_ROOT.parent / "shared" / "data"))

# pytest runs with -n 2 on 2 cores: one thread per worker avoids oversubscription (100x slowdowns seen).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} not present")
    return SHARED_DATA


@pytest.fixture
def tiny_shape() -> ForecastShape:
    return ForecastShape(history=6, horizon=6, channels=1, height=6, width=4, slots_per_day=24)


@pytest.fixture
def batch_factory():
    return make_batch
