"""What ``serve`` sets up for its process before answering: uvicorn's keep-alive and glibc's malloc arenas."""

from __future__ import annotations

import httpx
import pytest
import uvicorn

from stvfm.errors import ConfigError
from stvfm.serving import server
from stvfm.serving.settings import ServeSettings


def test_the_server_keeps_idle_connections_longer_than_its_clients_do(served, tmp_path, monkeypatch):
    """A server that closes an idle connection no later than its client races the client's next request on it."""
    started = {}
    monkeypatch.setenv(server.ARENA_VARIABLE, "2")  # the arena cap is the next test's; leave this process's alone
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: started.update(options))
    settings = ServeSettings(exports=(str(served.forecaster.folder),), store=str(tmp_path / "h.sqlite"))
    server.serve(settings)
    assert started["timeout_keep_alive"] == settings.keep_alive_s
    assert settings.keep_alive_s > httpx.Limits().keepalive_expiry  # 5 s, uvicorn's default: the race of issue 27
    assert settings.keep_alive_s > 60  # nginx's and AWS ALB's upstream idle timeouts


def test_serve_caps_malloc_arenas_for_itself_and_its_workers_unless_the_caller_did(monkeypatch):
    monkeypatch.setenv(server.ARENA_VARIABLE, "4")
    assert not server.limit_malloc_arenas(2)
    assert server.os.environ[server.ARENA_VARIABLE] == "4"
    monkeypatch.delenv(server.ARENA_VARIABLE)
    assert server.limit_malloc_arenas(2)
    assert server.os.environ[server.ARENA_VARIABLE] == "2"


def test_a_malloc_arena_count_below_one_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="--malloc-arenas 0"):
        server.serve(ServeSettings(exports=("unused",), store=str(tmp_path / "h.sqlite"), malloc_arenas=0))
