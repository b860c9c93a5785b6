"""Running the service under uvicorn, in one process or several workers.

Workers are separate processes: each loads every export and batches only its own requests; they
share the one SQLite history store. Uvicorn starts workers from an import string, so the settings
travel to them in an environment variable and ``app_from_environment`` rebuilds the app there.

Before anything is loaded, ``serve`` sets glibc's malloc up for a long-running process (``ServeSettings``'s
``malloc_arenas`` and ``malloc_mmap_threshold``): for this process by ``mallopt``, for workers by the
environment variables glibc reads when they start.
"""

from __future__ import annotations

import ctypes
import os

from fastapi import FastAPI

from stvfm.errors import ConfigError
from stvfm.serving.app import create_app
from stvfm.serving.models import load_served_models
from stvfm.serving.settings import ServeSettings

SETTINGS_VARIABLE = "STVFM_SERVE_SETTINGS"
#: glibc's mallopt parameters (malloc.h) and the environment variables that set them when a process starts.
MALLOPT_VARIABLES = {"MALLOC_ARENA_MAX": -8, "MALLOC_MMAP_THRESHOLD_": -3}


def app_from_settings(settings: ServeSettings) -> FastAPI:
    return create_app(load_served_models(settings.exports), settings)


def app_from_environment() -> FastAPI:
    """The app a uvicorn worker builds from the settings ``serve`` left in its environment."""
    return app_from_settings(ServeSettings.from_json(os.environ[SETTINGS_VARIABLE]))


def tune_malloc(arenas: int, mmap_threshold: int) -> dict[str, int]:
    """Set glibc's arena cap and mmap threshold for this process and the workers it starts; what it set. A value
    the caller gave in the environment (in force since the process started) is left alone, and so is a C library
    without ``mallopt`` (musl, macOS).

    glibc fixes the arena cap the first time it needs a ninth arena, so this runs before the service's threads
    allocate: threads that exist now keep their arenas, every later one shares the capped few.
    """
    libc = ctypes.CDLL(None)
    if not hasattr(libc, "mallopt"):
        return {}
    applied = {}
    for variable, value in (("MALLOC_ARENA_MAX", arenas), ("MALLOC_MMAP_THRESHOLD_", mmap_threshold)):
        if variable in os.environ:
            continue
        if libc.mallopt(MALLOPT_VARIABLES[variable], value) != 1:
            raise ConfigError(f"the C library refused {variable} = {value} (mallopt)")
        os.environ[variable] = str(value)
        applied[variable] = value
    return applied


def serve(settings: ServeSettings) -> None:
    """Load and check every export and the store, then answer until interrupted."""
    import uvicorn

    if settings.workers < 1:
        raise ConfigError(f"--workers {settings.workers}: give at least 1")
    tune_malloc(settings.malloc_arenas, settings.malloc_mmap_threshold)
    app = app_from_settings(settings)  # a bad export or store fails here, in one line, before any worker starts
    network = {"host": settings.host, "port": settings.port, "root_path": settings.root_path, "proxy_headers": True,
                   "forwarded_allow_ips": settings.forwarded_allow_ips, "timeout_keep_alive": settings.keep_alive_s,
               "log_level": "info"}
    if settings.workers == 1:
        uvicorn.run(app, **network)
        return
    del app  # each worker loads its own
    os.environ[SETTINGS_VARIABLE] = settings.to_json()
    uvicorn.run(f"{__name__}:app_from_environment", factory=True, workers=settings.workers, **network)
