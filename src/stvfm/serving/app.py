"""The HTTP API and the page: ``create_app`` builds the FastAPI application over loaded models and a store."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from importlib.resources import files
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from stvfm.errors import ConfigError, RequestError, StvfmError
from stvfm.serving.batching import BatchCounts, MicroBatcher
from stvfm.serving.frames import (
    FILE_FIELD,
    JSON,
    MODEL_FIELD,
    MULTIPART,
    Frames,
    iso,
    model_named,
    request_frames,
)
from stvfm.serving.models import ServedModel
from stvfm.serving.settings import ServeSettings
from stvfm.serving.store import HistoryStore
from stvfm.version import __version__

Grid = list[list[list[list[float]]]]


class FramesBody(BaseModel):
    """Frames of one model's grid, oldest first, in original units."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(description="a served model's name (GET /v1/models)")
    timestamps: list[str] = Field(min_length=1, description="one ISO 8601 wall-clock time per frame, no UTC offset, "
                                                            "stepping by exactly the model's interval")
    values: Grid = Field(description="(time, channel, y, x) nested lists of finite numbers")


class FramesReply(BaseModel):
    model: str
    timestamps: list[str]
    values: Grid


class ObservedReply(BaseModel):
    model: str
    stored_steps: int
    newest: str


class ModelReply(BaseModel):
    name: str
    history_steps: int
    horizon: int
    channels: int
    height: int
    width: int
    interval_minutes: int
    series_start: str
    card: dict[str, Any]
    observed_steps: int
    newest: str | None


class ModelsReply(BaseModel):
    models: list[ModelReply]


class BatchCountsReply(BaseModel):
    forward_passes: int
    forecasts: int
    largest_batch: int


class HealthReply(BaseModel):
    status: str
    version: str
    models: dict[str, BatchCountsReply]


class Refusal(BaseModel):
    detail: str = Field(description="one line: what was wrong with the request")


def frames_request(names: list[str]) -> dict[str, Any]:
    """The POST body's schema: JSON or an npz upload, naming one of the served models."""
    model = {"type": "string", "enum": names, "description": "a served model's name (GET /v1/models)"}
    body = FramesBody.model_json_schema()
    body["properties"]["model"] = model
    upload = {"type": "object", "required": [MODEL_FIELD, FILE_FIELD], "additionalProperties": False,
              "properties": {MODEL_FIELD: model,
                             FILE_FIELD: {"type": "string", "format": "binary",
                                          "description": "npz with 'values' (T, C, H, W) and 'timestamps' (T,)"}}}
    return {"requestBody": {"required": True, "content": {JSON: {"schema": body}, MULTIPART: {"schema": upload}}}}


def refusals(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": Refusal} for code in codes}


def create_app(models: dict[str, ServedModel], settings: ServeSettings) -> FastAPI:
    """The service over already loaded models; the store is opened (and the models registered in it) here."""
    too_long = [f"{model.name} needs {model.history_steps}" for model in models.values()
                if model.history_steps > settings.keep_steps]
    if too_long:
        raise ConfigError(f"--keep-steps {settings.keep_steps} keeps less than a forecast needs ({', '.join(too_long)})")
    store = HistoryStore(settings.store, settings.keep_steps)
    for model in models.values():
        store.register(model)
    batchers: dict[str, MicroBatcher] = {}
    newest_forecasts: dict[str, tuple[str, dict]] = {}
    page = files("stvfm.serving").joinpath("page.html").read_text()
    names = sorted(models)
    model_query = Query(description="a served model's name", json_schema_extra={"enum": names})

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="forecast") as executor:
            for name, model in models.items():
                batchers[name] = MicroBatcher(model, executor, settings.batch_window_ms / 1000, settings.max_batch)
                batchers[name].start()
            try:
                yield
            finally:
                for batcher in batchers.values():
                    await batcher.stop()

    app = FastAPI(title="stvfm forecast service", version=__version__, lifespan=lifespan,
                  description="Forecasts of exported stvfm models from posted or observed frames, in original units.")

    @app.exception_handler(StvfmError)
    async def refused(_: Request, error: StvfmError) -> JSONResponse:
        status = error.status if isinstance(error, RequestError) else 422
        return JSONResponse({"detail": str(error)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("query", "body"))
        return JSONResponse({"detail": f"{where}: {first.get('msg', 'invalid')}"}, status_code=422)

    def reply(model: ServedModel, frames: Frames) -> dict:
        return {"model": model.name, "timestamps": iso(frames.timestamps), "values": frames.values.tolist()}

    async def forecast(model: ServedModel, history: Frames) -> dict:
        """One request's forecast, its history checked by the export itself before it joins a batch."""
        checked = Frames(*model.check_input(history.values, history.timestamps))
        return reply(model, await batchers[model.name].forecast(checked))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def show_page(request: Request) -> HTMLResponse:
        return HTMLResponse(page.replace("{{base}}", request.scope.get("root_path", "").rstrip("/") + "/"))

    @app.get("/v1/health", response_model=HealthReply)
    async def health() -> dict:
        """Up, and how many forward passes served how many forecasts per model (micro-batching at work)."""
        counts = {name: vars(batcher.counts) for name, batcher in batchers.items()}
        return {"status": "ok", "version": __version__,
                "models": counts or {name: vars(BatchCounts()) for name in models}}

    @app.get("/v1/models", response_model=ModelsReply)
    def list_models() -> dict:
        """Every served model: its card, its grid and steps, and how much history it has observed."""
        described = []
        for model in models.values():
            observed, newest = store.summary(model)
            described.append({**model.describe(), "observed_steps": observed, "newest": newest})
        return {"models": described}

    @app.post("/v1/forecast", response_model=FramesReply, openapi_extra=frames_request(names),
              responses=refusals(400, 404, 413, 415, 422))
    async def forecast_posted(request: Request) -> JSONResponse:
        """The next Q frames after the posted ones (at least the model's last P), with their timestamps."""
        model, history = await request_frames(request, models, settings.max_body_bytes)
        return JSONResponse(await forecast(model, history))

    @app.get("/v1/forecast", response_model=FramesReply, responses=refusals(404, 409, 422))
    async def forecast_observed(model: str = model_query) -> JSONResponse:
        """The next Q frames after the model's newest observed history."""
        served = model_named(model, models)
        _, newest = await run_in_threadpool(store.summary, served)
        cached = newest_forecasts.get(served.name)
        if cached is not None and cached[0] == newest:
            return JSONResponse(cached[1])
        history = await run_in_threadpool(store.latest, served, served.history_steps)
        if len(history.timestamps) < served.history_steps:
            raise RequestError(409, f"model {served.name!r} has observed {len(history.timestamps)} of the "
                                    f"{served.history_steps} steps a forecast needs; POST /v1/observe first")
        payload = await forecast(served, history)
        newest_forecasts[served.name] = (newest, payload)
        return JSONResponse(payload)

    @app.post("/v1/observe", response_model=ObservedReply, openapi_extra=frames_request(names),
              responses=refusals(400, 404, 409, 413, 415, 422))
    async def observe(request: Request) -> dict:
        """Append newly observed frames to the model's history: all of them, continuing it exactly, or none."""
        model, frames = await request_frames(request, models, settings.max_body_bytes)
        stored, newest = await run_in_threadpool(store.append, model, frames)
        return {"model": model.name, "stored_steps": stored, "newest": newest}

    @app.get("/v1/history", response_model=FramesReply, responses=refusals(404, 422))
    def history(model: str = model_query,
                steps: Annotated[int, Query(ge=1, le=100_000, description="how many newest frames")] = 48) -> dict:
        """The model's newest observed frames, oldest first (fewer when fewer are kept)."""
        served = model_named(model, models)
        return reply(served, store.latest(served, steps))

    return app
