from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def isolated_weights_cache(tmp_path, monkeypatch):
    """No test reads or writes the user's real weights cache unless it asks to."""
    monkeypatch.setenv("STVFM_CACHE_DIR", str(tmp_path / "stvfm-cache"))
