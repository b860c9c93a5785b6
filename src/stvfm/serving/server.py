"""Running the service under uvicorn, in one process or several workers.

Workers are separate processes: each loads every export and batches only its own requests; they
share the one SQLite history store. Uvicorn starts workers from an import string, so the settings
travel to them in an environment variable and ``app_from_environment`` rebuilds the app there.

Before anything is loaded, ``serve`` caps glibc's malloc arenas (``ServeSettings.malloc_arenas``), for
this process by ``mallopt`` and for workers by ``MALLOC_ARENA_MAX`` in the environment they start with.
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
ARENA_VARIABLE = "MALLOC_ARENA_MAX"
#: glibc's mallopt parameter for the arena cap (malloc.h).
M_ARENA_MAX = -8


def app_from_settings(settings: ServeSettings) -> FastAPI:
    return create_app(load_served_models(settings.exports), settings)


def app_from_environment() -> FastAPI:
    """The app a uvicorn worker builds from the settings ``serve`` left in its environment."""
    return app_from_settings(ServeSettings.from_json(os.environ[SETTINGS_VARIABLE]))


def limit_malloc_arenas(arenas: int) -> bool:
    """Cap glibc's malloc arenas for this process and the workers it starts, unless ``MALLOC_ARENA_MAX`` is set
    already (the caller's choice, in force since the process started); whether this call set the cap.

    glibc fixes the cap the first time it needs a ninth arena, so this must run before the service's threads
    allocate: the threads that exist now keep their arenas, every later one shares the capped few.
    """
    if ARENA_VARIABLE in os.environ:
        return False
    libc = ctypes.CDLL(None)
    if not hasattr(libc, "mallopt"):  # not glibc (musl, macOS): no per-thread arenas to cap
        return False
    if libc.mallopt(M_ARENA_MAX, arenas) != 1:
        raise ConfigError(f"mallopt(M_ARENA_MAX, {arenas}) was refused by the C library")
    os.environ[ARENA_VARIABLE] = str(arenas)
    return True


def serve(settings: ServeSettings) -> None:
    """Load and check every export and the store, then answer until interrupted."""
    import uvicorn

    if settings.workers < 1:
        raise ConfigError(f"--workers {settings.workers}: give at least 1")
    if settings.malloc_arenas < 1:
        raise ConfigError(f"--malloc-arenas {settings.malloc_arenas}: give at least 1")
    limit_malloc_arenas(settings.malloc_arenas)
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
