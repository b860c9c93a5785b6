"""Fixtures for the robustness tests (helpers live in ``robust_helpers``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from robust_helpers import write_tiny_city


@pytest.fixture(scope="session")
def tiny_city(tmp_path_factory) -> Path:
    return write_tiny_city(tmp_path_factory.mktemp("city") / "city.npz")
