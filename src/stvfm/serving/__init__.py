"""The forecast service (``stvfm serve``): exported models behind an HTTP API and a live map page.

Owns: the service's settings (``settings``), the models it serves and the one place that reads a
loaded export's attributes (``models``), request frames and their validation (``frames``), the
rolling observation history in SQLite (``store``), micro-batching of concurrent forecasts into one
forward pass (``batching``), the FastAPI application and its page (``app``, ``page.html``),
running it under uvicorn (``server``) and the bounded load test (``load_test``).

May import: fastapi, starlette, pydantic, uvicorn, httpx (``load_test`` only), numpy, the stdlib
``sqlite3``, ``stvfm.export`` (loading an export), ``stvfm.data`` (the generic npz reader),
``stvfm.errors``; never ``stvfm.training``, ``stvfm.experiments``, ``stvfm.reports``, the CLI or
``stvfm.testing``.

Imports from stvfm: ``stvfm.export``, ``stvfm.data``, ``stvfm.errors``, ``stvfm.version``.
"""
