"""``stvfm serve``: exported models behind an HTTP API and a live map page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stvfm.cli.options import given
from stvfm.serving.settings import ServeSettings

DEFAULTS = ServeSettings()
MIB = 1024 * 1024

SERVE_HELP = f"""Serve forecasts of one or more exports (folders written by `stvfm export`) over HTTP.

Each export is served under its folder's name. POST /v1/forecast: the last P frames with their timestamps (JSON, or an npz upload) give the next Q frames. POST /v1/observe: append observed frames to the model's rolling history, kept in --store; GET /v1/forecast?model=NAME forecasts from it. GET /v1/models, /v1/health, /docs, /openapi.json, and / (a page of live forecast maps).

[bold]Behind a reverse proxy[/]: keep the default loopback --host and let the proxy forward to it. When the proxy serves the service under a path prefix (https://example.org/forecasts/ -> http://127.0.0.1:{DEFAULTS.port}/, prefix stripped), give --root-path /forecasts so the page, its requests and the schema's server URL carry the prefix. X-Forwarded-For / -Proto headers are trusted only from --forwarded-allow-ips (the proxy's address; '*' only when nothing but the proxy reaches the port).

[bold]Several workers[/] (--workers N): N processes share the port; each loads every export and micro-batches only the requests it receives (smaller batches under the same load, N times the memory). They share the one SQLite --store (WAL journal): each observation is one transaction that checks it continues the history, so workers never interleave or duplicate frames; writes are serialised, reads are not. Keep --store on a local disk, not NFS. Where one forward pass already uses every core, one worker batches best.

[bold]Memory[/]: the service sets glibc's malloc up for a long run (2 arenas shared by its threads, buffers of 128 KiB or more mapped and given back when freed), so its resident memory stays flat under load (docs/benchmark.md). MALLOC_ARENA_MAX or MALLOC_MMAP_THRESHOLD_ in its environment, when set, win.

[bold]Keep-alive[/]: idle connections stay open --keep-alive seconds. Keep it above the idle timeout of the proxy (nginx upstream keepalive_timeout) or clients in front, so they always close an idle connection first; otherwise a request can race the server's close and its client gets a reset.
"""


def serve_command(
    exports: Annotated[list[Path], typer.Argument(metavar="DIR", help="Export folders written by `stvfm export`.", show_default=False)],
    store: Annotated[Path | None, typer.Option(help=f"SQLite file of observed histories, created if absent (default {DEFAULTS.store}).")] = None,
    host: Annotated[str | None, typer.Option(help=f"Address to bind; 0.0.0.0 for every interface (default {DEFAULTS.host}).")] = None,
    port: Annotated[int | None, typer.Option(help=f"Port to bind (default {DEFAULTS.port}).")] = None,
    workers: Annotated[int | None, typer.Option(help=f"Worker processes, see above (default {DEFAULTS.workers}).")] = None,
    root_path: Annotated[str | None, typer.Option(help="Path prefix a reverse proxy serves the service under, e.g. /forecasts.")] = None,
    forwarded_allow_ips: Annotated[str | None, typer.Option(help=f"Comma-separated proxy addresses whose X-Forwarded-* headers are trusted (default {DEFAULTS.forwarded_allow_ips}).")] = None,
    max_body_mb: Annotated[float | None, typer.Option(help=f"Largest request body in MiB; larger ones get 413 (default {DEFAULTS.max_body_bytes / MIB:g}).")] = None,
    batch_window_ms: Annotated[float | None, typer.Option(help=f"How long a forecast waits for others to share its forward pass (default {DEFAULTS.batch_window_ms:g}).")] = None,
    max_batch: Annotated[int | None, typer.Option(help=f"Most forecasts in one forward pass (default {DEFAULTS.max_batch}).")] = None,
    keep_steps: Annotated[int | None, typer.Option(help=f"Observed steps kept per model, at least each model's history length (default {DEFAULTS.keep_steps}).")] = None,
    keep_alive: Annotated[int | None, typer.Option(help=f"Seconds an idle keep-alive connection stays open; keep it above the idle timeout of the proxy or clients in front (default {DEFAULTS.keep_alive_s}).")] = None,
) -> None:
    from stvfm.serving.server import serve

    settings = ServeSettings(**given(
        exports=tuple(str(folder) for folder in exports), store=None if store is None else str(store), host=host,
        port=port, workers=workers, root_path=root_path, forwarded_allow_ips=forwarded_allow_ips,
        max_body_bytes=None if max_body_mb is None else int(max_body_mb * MIB),
        batch_window_ms=batch_window_ms, max_batch=max_batch, keep_steps=keep_steps, keep_alive_s=keep_alive))
    serve(settings)


def register(app: typer.Typer) -> None:
    app.command("serve", help=SERVE_HELP)(serve_command)
