"""Fixtures: a served model, and the service on loopback with a fresh history store."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from serving_helpers import StandInForecaster, running

from stvfm.serving.app import create_app
from stvfm.serving.models import ServedModel, served_model
from stvfm.serving.settings import ServeSettings


@pytest.fixture(scope="session")
def served() -> ServedModel:
    return served_model("city", StandInForecaster())


@pytest.fixture
def service(served, tmp_path) -> Iterator[tuple[str, ServeSettings]]:
    settings = ServeSettings(store=str(tmp_path / "history.sqlite"), keep_steps=12, max_body_bytes=50_000)
    with running(create_app({served.name: served}, settings)) as url:
        yield url, settings


@pytest.fixture
def client(service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service[0], timeout=10) as http:
        yield http
