"""What ``serve`` sets up for its process before answering: uvicorn's keep-alive and glibc's malloc."""

from __future__ import annotations

import httpx
import uvicorn

from stvfm.serving import server
from stvfm.serving.settings import ServeSettings


def test_the_server_keeps_idle_connections_longer_than_its_clients_do(served, tmp_path, monkeypatch):
    """A server that closes an idle connection no later than its client races the client's next request on it."""
    started = {}
    for variable in server.MALLOPT_VARIABLES:  # the malloc set-up is the next test's; leave this process's alone
        monkeypatch.setenv(variable, "0")
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: started.update(options))
    settings = ServeSettings(exports=(str(served.forecaster.folder),), store=str(tmp_path / "h.sqlite"))
    server.serve(settings)
    assert started["timeout_keep_alive"] == settings.keep_alive_s
    assert settings.keep_alive_s > httpx.Limits().keepalive_expiry  # 5 s, uvicorn's default: the race of issue 27
    assert settings.keep_alive_s > 60  # nginx's and AWS ALB's upstream idle timeouts


def test_serve_sets_malloc_up_for_itself_and_its_workers_unless_the_caller_did(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    settings = ServeSettings()
    assert server.tune_malloc(settings.malloc_arenas, settings.malloc_mmap_threshold) == {
        "MALLOC_MMAP_THRESHOLD_": settings.malloc_mmap_threshold}
    assert server.os.environ["MALLOC_ARENA_MAX"] == "4"  # what a worker process starts with
    assert server.os.environ["MALLOC_MMAP_THRESHOLD_"] == str(settings.malloc_mmap_threshold)
