"""Frames as requests carry them (a JSON body or an npz upload), checked against the model they name.

Every refusal is a ``RequestError`` whose one-line message names the field and the problem, raised
before anything is forecast or stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from stvfm.data.sources.generic import read_npz_arrays
from stvfm.errors import DataError, RequestError
from stvfm.serving.models import ServedModel

JSON = "application/json"
MULTIPART = "multipart/form-data"
#: The upload's form fields: the model's name and the npz file (``values`` and ``timestamps`` arrays).
MODEL_FIELD, FILE_FIELD = "model", "frames"


@dataclass(frozen=True)
class Frames:
    """Consecutive frames of one model's grid: float32 (T, C, H, W) values in original units, datetime64[s] (T,)."""

    values: np.ndarray
    timestamps: np.ndarray


def iso(timestamps: np.ndarray) -> list[str]:
    return np.datetime_as_string(timestamps.astype("datetime64[s]"), unit="s").tolist()


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, refused (413) as soon as it passes ``max_bytes``, whatever Content-Length claimed."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise RequestError(413, f"body of {int(declared):,} bytes is over the limit of {max_bytes:,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise RequestError(413, f"body is over the limit of {max_bytes:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def request_frames(request: Request, models: dict[str, ServedModel],
                         max_bytes: int) -> tuple[ServedModel, Frames]:
    """The model a POST names and its frames, from a JSON body or a multipart npz upload."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in (JSON, MULTIPART):
        raise RequestError(415, f"content type {content_type or '(none)'!r} is not accepted; send {JSON} "
                                f"or {MULTIPART} with fields {MODEL_FIELD!r} and {FILE_FIELD!r} (an npz)")
    body = await read_body(request, max_bytes)
    if content_type == JSON:
        return json_frames(body, models)
    return await uploaded_frames(request, body, models, max_bytes)


def json_frames(body: bytes, models: dict[str, ServedModel]) -> tuple[ServedModel, Frames]:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise RequestError(400, f"body is not valid JSON ({str(error)[:120]})") from None
    if not isinstance(payload, dict):
        raise RequestError(422, "body must be a JSON object with 'model', 'timestamps' and 'values'")
    missing = [key for key in ("model", "timestamps", "values") if key not in payload]
    if missing:
        raise RequestError(422, f"body lacks {', '.join(repr(key) for key in missing)}")
    extra = sorted(set(payload) - {"model", "timestamps", "values"})
    if extra:
        raise RequestError(422, f"unknown field(s) {', '.join(repr(key) for key in extra)}")
    model = model_named(payload["model"], models)
    raw_times = payload["timestamps"]
    if not isinstance(raw_times, list) or not all(isinstance(stamp, str) for stamp in raw_times):
        raise RequestError(422, "'timestamps' must be a list of ISO 8601 date-time strings")
    try:
        values = np.asarray(payload["values"])
    except (ValueError, TypeError, RecursionError):
        raise RequestError(422, "'values' must be a (time, channel, y, x) nested list of numbers of equal lengths") from None
    if values.dtype.kind not in "iuf":
        raise RequestError(422, "'values' must be a (time, channel, y, x) nested list of numbers (no strings, "
                                "nulls or ragged rows)")
    return model, checked_frames(model, values, wall_clock_times(raw_times), "'values'")


async def uploaded_frames(request: Request, body: bytes, models: dict[str, ServedModel],
                          max_bytes: int) -> tuple[ServedModel, Frames]:
    async def replay() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=2)
    except (MultiPartException, HTTPException) as error:  # starlette turns MultiPartException into HTTPException
        reason = getattr(error, "detail", None) or getattr(error, "message", "")
        raise RequestError(400, f"malformed multipart body ({str(reason)[:120]})") from None
    try:
        name, upload = form.get(MODEL_FIELD), form.get(FILE_FIELD)
        if not isinstance(name, str):
            raise RequestError(422, f"the upload lacks the text field {MODEL_FIELD!r} naming the model")
        model = model_named(name, models)
        if upload is None or isinstance(upload, str):
            raise RequestError(422, f"the upload lacks the file field {FILE_FIELD!r} (an npz with 'values' and 'timestamps')")
        where = f"upload {upload.filename or FILE_FIELD!r}"
        try:
            arrays = read_npz_arrays(upload.file, where, max_bytes)
        except DataError as error:
            raise RequestError(422, str(error)) from None
    finally:
        await form.close()
    for key in ("values", "timestamps"):
        if key not in arrays:
            raise RequestError(422, f"{where}: missing array {key!r}; the npz needs 'values' and 'timestamps'")
    values, raw_times = arrays["values"], arrays["timestamps"]
    if values.dtype.kind not in "iuf":
        raise RequestError(422, f"{where}: 'values' must be real numbers, got dtype {values.dtype}")
    if raw_times.dtype.kind == "M":
        timestamps = raw_times.astype("datetime64[s]")
        if np.isnat(timestamps).any():
            raise RequestError(422, f"{where}: 'timestamps' contain missing values (NaT)")
    elif raw_times.dtype.kind == "U" and raw_times.ndim == 1:
        timestamps = wall_clock_times(raw_times.tolist())
    else:
        raise RequestError(422, f"{where}: 'timestamps' must be datetime64 or ISO strings, one per step")
    return model, checked_frames(model, values, timestamps, f"{where}: 'values'")


def model_named(name: object, models: dict[str, ServedModel]) -> ServedModel:
    if not isinstance(name, str) or name not in models:
        raise RequestError(404, f"unknown model {str(name)[:80]!r}; served: {', '.join(sorted(models))}")
    return models[name]


def wall_clock_times(stamps: list[str]) -> np.ndarray:
    """ISO 8601 strings as datetime64[s]; an offset is refused since the calendar reads the series' own clock."""
    parsed = []
    for index, stamp in enumerate(stamps):
        try:
            moment = datetime.fromisoformat(stamp)
        except ValueError:
            raise RequestError(422, f"timestamps[{index}] = {stamp[:40]!r} is not an ISO 8601 date-time") from None
        if moment.tzinfo is not None:
            raise RequestError(422, f"timestamps[{index}] = {stamp[:40]!r} has a UTC offset; give the series' own "
                                    "wall-clock time without one, as in its training data")
        parsed.append(moment)
    return np.array(parsed, dtype="datetime64[s]").reshape(len(parsed))


def checked_frames(model: ServedModel, values: np.ndarray, timestamps: np.ndarray, where: str) -> Frames:
    """Frames of the model's grid, finite, with one timestamp per frame stepping by exactly its interval."""
    if values.ndim != 4 or values.shape[1:] != model.frame_shape or values.shape[0] == 0:
        raise RequestError(422, f"{where} has shape {values.shape}; model {model.name!r} takes (time, channel, y, x) "
                                f"= (T, {', '.join(map(str, model.frame_shape))})")
    if len(timestamps) != values.shape[0]:
        raise RequestError(422, f"{len(timestamps)} timestamps for {values.shape[0]} frames; give one per frame")
    finite = np.isfinite(values)
    if not finite.all():
        step = int(np.argwhere(~finite)[0][0])
        raise RequestError(422, f"{where} has {int((~finite).sum())} NaN/inf value(s) (first in frame {step}); "
                                "the model takes finite numbers only")
    steps = np.diff(timestamps.astype(np.int64))
    interval = model.interval_minutes * 60
    if (steps != interval).any():
        backwards = steps <= 0
        at = int(np.argmax(backwards if backwards.any() else steps != interval))
        order = "out of order" if backwards.any() else "off the interval"
        raise RequestError(422, f"timestamps are {order}: {iso(timestamps[at:at + 2])[0]} to "
                                f"{iso(timestamps[at:at + 2])[1]}, but model {model.name!r} steps by exactly "
                                f"{model.interval_minutes} min")
    offset = (timestamps[0] - model.series_start) % np.timedelta64(interval, "s")
    if offset:
        raise RequestError(422, f"timestamps are off the interval grid: {iso(timestamps[:1])[0]} is not "
                                f"{model.series_start} + k x {model.interval_minutes} min")
    magnitude = np.abs(values).max()
    if magnitude > np.finfo(np.float32).max:
        raise RequestError(422, f"{where} holds {float(magnitude):.3g}, beyond what float32 can hold")
    return Frames(values.astype(np.float32), timestamps.astype("datetime64[s]"))
