"""The service's HTTP contract, through a real server on loopback: answers, refusals, history, batching."""

from __future__ import annotations

import dataclasses
import io
import threading

import httpx
import numpy as np
import pytest
from serving_helpers import START, body, frames, running

from stvfm.errors import ConfigError
from stvfm.serving.app import create_app
from stvfm.serving.settings import ServeSettings


def npz_bytes(values: np.ndarray, times: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, values=values, timestamps=times)
    return buffer.getvalue()


def listing(client: httpx.Client, name: str) -> dict:
    return next(model for model in client.get("/v1/models").json()["models"] if model["name"] == name)


def test_forecast_answers_the_next_steps_in_original_units(served, client):
    values, times = frames(served, served.history_steps)
    answer = client.post("/v1/forecast", json=body(served, values, times))
    assert answer.status_code == 200, answer.text
    expected, expected_times = served.forecaster.forecast(values, times)
    reply = answer.json()
    assert reply["model"] == served.name
    np.testing.assert_allclose(np.array(reply["values"]), expected, rtol=1e-6)
    assert reply["timestamps"] == np.datetime_as_string(expected_times, unit="s").tolist()
    assert reply["timestamps"][0] == "2024-01-01T06:00:00"


def test_an_npz_upload_and_a_longer_history_give_the_same_forecast(served, client):
    values, times = frames(served, served.history_steps + 4)
    upload = client.post("/v1/forecast", data={"model": served.name},
                         files={"frames": ("last.npz", npz_bytes(values, times), "application/octet-stream")})
    assert upload.status_code == 200, upload.text
    last = client.post("/v1/forecast", json=body(served, values[-served.history_steps:], times[-served.history_steps:]))
    assert upload.json() == last.json()


def test_observe_then_forecast_answers_from_the_newest_history(served, client):
    values, times = frames(served, served.history_steps + 2)
    assert client.get("/v1/forecast", params={"model": served.name}).status_code == 409
    first = client.post("/v1/observe", json=body(served, values[:4], times[:4]))
    assert first.json() == {"model": served.name, "stored_steps": 4, "newest": "2024-01-01T03:00:00"}
    second = client.post("/v1/observe", json=body(served, values[4:], times[4:]))
    assert second.status_code == 200 and second.json()["stored_steps"] == len(times)
    observed = client.get("/v1/forecast", params={"model": served.name}).json()
    posted = client.post("/v1/forecast", json=body(served, values, times)).json()
    assert observed == posted
    kept = client.get("/v1/history", params={"model": served.name, "steps": 3}).json()
    np.testing.assert_array_equal(np.array(kept["values"], dtype=np.float32), values[-3:])
    listed = listing(client, served.name)
    assert listed["observed_steps"] == len(times) and listed["newest"] == kept["timestamps"][-1]
    assert listed["card"] == served.card and listed["horizon"] == served.horizon


def test_history_rolls_at_keep_steps_and_survives_a_restart(served, service):
    url, settings = service
    values, times = frames(served, settings.keep_steps + 5)
    assert httpx.post(f"{url}/v1/observe", json=body(served, values, times)).json()["stored_steps"] == settings.keep_steps
    with running(create_app({served.name: served}, settings)) as again:
        kept = httpx.get(f"{again}/v1/history", params={"model": served.name, "steps": 100}).json()
        assert kept["timestamps"][0] == np.datetime_as_string(times[5], unit="s")
        np.testing.assert_array_equal(np.array(kept["values"], dtype=np.float32), values[5:])
        assert httpx.get(f"{again}/v1/forecast", params={"model": served.name}).status_code == 200


def _with(payload: dict, **changes) -> dict:
    return {**payload, **changes}


def refusals(served) -> dict[str, tuple[dict, int, str]]:
    """Bad observations and forecasts: (request keywords, status, a phrase of the reason)."""
    values, times = frames(served, served.history_steps, first=START + np.timedelta64(10, "h"))
    good = body(served, values, times)
    nan = values.copy()
    nan[2, 0, 1, 1] = np.nan
    shuffled = list(good["timestamps"])
    shuffled[2], shuffled[3] = shuffled[3], shuffled[2]
    skipped = list(good["timestamps"])
    skipped[-1] = "2024-01-01T17:30:00"
    too_big = values.repeat(200, axis=0)  # about 90 kB of JSON, over the 50 kB limit
    return {
        "wrong grid": ({"json": _with(good, values=values[:, :, :4].tolist())}, 422, "takes (time, channel, y, x)"),
        "NaN": ({"content": str(_with(good, values=nan.tolist())).replace("nan", "NaN").replace("'", '"'),
                     "headers": {"content-type": "application/json"}}, 422, "NaN"),
        "null": ({"json": _with(good, values=[[[[None]]]])}, 422, "nested list of numbers"),
        "strings": ({"json": _with(good, values=[[[["1"]]]])}, 422, "nested list of numbers"),
        "out of order": ({"json": _with(good, timestamps=shuffled)}, 422, "out of order"),
        "off the interval": ({"json": _with(good, timestamps=skipped)}, 422, "off the interval"),
        "off the grid": ({"json": _with(good, timestamps=[t[:14] + "30:00" for t in good["timestamps"]])}, 422,
                         "off the interval grid"),
        "UTC offset": ({"json": _with(good, timestamps=[t + "+02:00" for t in good["timestamps"]])}, 422, "offset"),
        "not a time": ({"json": _with(good, timestamps=["noon"] * len(times))}, 422, "not an ISO 8601"),
        "count": ({"json": _with(good, timestamps=good["timestamps"][:-1])}, 422, "timestamps for"),
        "unknown model": ({"json": _with(good, model="atlantis")}, 404, "unknown model"),
        "extra field": ({"json": _with(good, note=1)}, 422, "unknown field"),
        "missing field": ({"json": {"model": served.name}}, 422, "lacks"),
        "content type": ({"content": b"1,2,3", "headers": {"content-type": "text/csv"}}, 415, "content type"),
        "not JSON": ({"content": b"{oops", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
        "too large": ({"json": body(served, too_big, START + np.arange(len(too_big)) * np.timedelta64(3600, "s"))},
                      413, "over the limit"),
        "not an npz": ({"data": {"model": served.name}, "files": {"frames": ("x.npz", b"PK\x03\x04 broken")}},
                       422, "not a readable npz"),
        "upload without file": ({"data": {"model": served.name}, "files": {"other": ("x", b"1")}}, 422, "lacks the file"),
    }


@pytest.mark.parametrize("path", ["/v1/observe", "/v1/forecast"])
def test_bad_requests_get_one_clear_reason_and_leave_history_alone(served, client, path):
    values, times = frames(served, 10)
    client.post("/v1/observe", json=body(served, values, times))  # history up to 09:00; the bad frames continue it
    before = client.get("/v1/history", params={"model": served.name, "steps": 100}).json()
    for case, (request, status, reason) in refusals(served).items():
        answer = client.post(path, **request)
        assert answer.status_code == status, (case, answer.text)
        detail = answer.json()["detail"]
        assert reason in detail and "\n" not in detail, (case, detail)
    assert client.get("/v1/history", params={"model": served.name, "steps": 100}).json() == before


def test_an_observation_must_continue_the_history_exactly(served, client):
    values, times = frames(served, 8)
    client.post("/v1/observe", json=body(served, values[:4], times[:4]))
    for start in (2, 5):  # overlapping, then leaving a gap
        answer = client.post("/v1/observe", json=body(served, values[start:], times[start:]))
        assert answer.status_code == 409 and "the next frame is 2024-01-01T04:00:00" in answer.json()["detail"]
    assert listing(client, served.name)["observed_steps"] == 4


def test_too_little_history_and_bad_queries_are_refused(served, client):
    values, times = frames(served, served.history_steps - 1)
    short = client.post("/v1/forecast", json=body(served, values, times))
    assert short.status_code == 422 and f"reads the last {served.history_steps}" in short.json()["detail"]
    assert client.get("/v1/forecast", params={"model": "atlantis"}).status_code == 404
    assert client.get("/v1/forecast").json()["detail"] == "model: Field required"
    assert client.get("/v1/history", params={"model": served.name, "steps": 0}).status_code == 422


def test_concurrent_observations_of_the_same_step_store_it_once(served, client, service):
    values, times = frames(served, 1)
    answers = []

    def observe(seed: int) -> None:
        answers.append(httpx.post(f"{service[0]}/v1/observe", json=body(served, values + seed, times)).status_code)

    threads = [threading.Thread(target=observe, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [200] + [409] * 7
    assert listing(client, served.name)["observed_steps"] == 1


def test_concurrent_forecasts_share_forward_passes(served, service):
    url, _ = service
    requests = [frames(served, served.history_steps, seed=seed) for seed in range(24)]
    answers: dict[int, dict] = {}

    def forecast(seed: int) -> None:
        answers[seed] = httpx.post(f"{url}/v1/forecast", json=body(served, *requests[seed]), timeout=10).json()

    threads = [threading.Thread(target=forecast, args=(seed,)) for seed in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for seed, (values, times) in enumerate(requests):
        np.testing.assert_allclose(answers[seed]["values"], served.forecaster.forecast(values, times)[0], atol=1e-4)
    counts = httpx.get(f"{url}/v1/health").json()["models"][served.name]
    assert counts["forecasts"] == len(requests)
    assert counts["forward_passes"] < len(requests) and counts["largest_batch"] > 1, counts


def test_behind_a_proxy_the_page_and_schema_name_the_root_path(served, tmp_path):
    settings = ServeSettings(store=str(tmp_path / "h.sqlite"))
    with running(create_app({served.name: served}, settings), root_path="/forecasts") as url:
        page = httpx.get(f"{url}/")
        assert page.status_code == 200 and '<base href="/forecasts/">' in page.text
        schema = httpx.get(f"{url}/openapi.json").json()
        assert schema["servers"] == [{"url": "/forecasts"}]
        assert {"/v1/forecast", "/v1/observe", "/v1/models", "/v1/health", "/v1/history"} <= set(schema["paths"])


def test_a_store_kept_for_another_grid_is_refused(served, tmp_path):
    settings = ServeSettings(store=str(tmp_path / "h.sqlite"))
    create_app({served.name: served}, settings)
    with pytest.raises(ConfigError, match="keeps a history for 'tiny-stvfm' of grid"):
        create_app({served.name: dataclasses.replace(served, height=4)}, settings)
    with pytest.raises(ConfigError, match="--keep-steps 2 keeps less"):
        create_app({served.name: served}, ServeSettings(store=str(tmp_path / "k.sqlite"), keep_steps=2))


def test_every_export_is_served_under_its_folders_name(served_models, client):
    names = {model["name"] for model in client.get("/v1/models").json()["models"]}
    assert names == set(served_models) == {"tiny-stvfm", "last"}
    card = listing(client, "last")["card"]
    assert card["model"] == "last" and card["data"]["grid"] == [5, 3]
