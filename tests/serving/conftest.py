"""Fixtures: a served model, and the service on loopback with a fresh history store."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from serving_helpers import running, tiny_exports

from stvfm.serving.app import create_app
from stvfm.serving.models import ServedModel, load_served_models
from stvfm.serving.settings import ServeSettings


@pytest.fixture(scope="session")
def served_models(tmp_path_factory) -> dict[str, ServedModel]:
    """Exports of tiny fit runs (ST-VFM, last-value) on a synthetic city, loaded as ``stvfm serve`` loads them."""
    return load_served_models(tuple(str(folder) for folder in tiny_exports(tmp_path_factory.mktemp("exports"))))


@pytest.fixture(scope="session")
def served(served_models) -> ServedModel:
    return served_models["tiny-stvfm"]


@pytest.fixture
def service(served_models, tmp_path) -> Iterator[tuple[str, ServeSettings]]:
    settings = ServeSettings(store=str(tmp_path / "history.sqlite"), keep_steps=12, max_body_bytes=50_000)
    with running(create_app(served_models, settings)) as url:
        yield url, settings


@pytest.fixture
def client(service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service[0], timeout=10) as http:
        yield http
