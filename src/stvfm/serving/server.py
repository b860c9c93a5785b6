"""Running the service under uvicorn, in one process or several workers.

Workers are separate processes: each loads every export and batches only its own requests; they
share the one SQLite history store. Uvicorn starts workers from an import string, so the settings
travel to them in an environment variable and ``app_from_environment`` rebuilds the app there.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from stvfm.errors import ConfigError
from stvfm.serving.app import create_app
from stvfm.serving.models import load_served_models
from stvfm.serving.settings import ServeSettings

SETTINGS_VARIABLE = "STVFM_SERVE_SETTINGS"


def app_from_settings(settings: ServeSettings) -> FastAPI:
    return create_app(load_served_models(settings.exports), settings)


def app_from_environment() -> FastAPI:
    """The app a uvicorn worker builds from the settings ``serve`` left in its environment."""
    return app_from_settings(ServeSettings.from_json(os.environ[SETTINGS_VARIABLE]))


def serve(settings: ServeSettings) -> None:
    """Load and check every export and the store, then answer until interrupted."""
    import uvicorn

    if settings.workers < 1:
        raise ConfigError(f"--workers {settings.workers}: give at least 1")
    app = app_from_settings(settings)  # a bad export or store fails here, in one line, before any worker starts
    network = {"host": settings.host, "port": settings.port, "root_path": settings.root_path, "proxy_headers": True,
                   "forwarded_allow_ips": settings.forwarded_allow_ips, "log_level": "info"}
    if settings.workers == 1:
        uvicorn.run(app, **network)
        return
    del app  # each worker loads its own
    os.environ[SETTINGS_VARIABLE] = settings.to_json()
    uvicorn.run(f"{__name__}:app_from_environment", factory=True, workers=settings.workers, **network)
