"""The page in headless Chromium (driven through chromedriver's WebDriver API): maps, a clicked cell's numbers,
a refresh when an observation arrives, and a screenshot.

Chromium must be installed (Debian: chromium, chromium-driver); where it cannot be, STVFM_NO_BROWSER=1 skips
this test, and nothing else does.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from serving_helpers import body, frames

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1000,1250"]
STVFM = 'section[data-model="tiny-stvfm"]'  # the learned model's part of the page
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C WebDriver key of an element reference


def _executable(name: str, debian_path: str) -> str:
    found = shutil.which(name) or (debian_path if Path(debian_path).exists() else None)
    if found is None:
        if os.environ.get("STVFM_NO_BROWSER"):
            pytest.skip(f"{name} is absent and STVFM_NO_BROWSER says so")
        pytest.fail(f"{name} not found: install Debian's chromium and chromium-driver (or set STVFM_NO_BROWSER=1 "
                    "where no browser can be installed)")
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Browser:
    """One headless Chromium session, through chromedriver's W3C WebDriver endpoints."""

    def __init__(self, driver: httpx.Client, session: str):
        self.driver, self.session = driver, session

    def call(self, method: str, path: str, payload: dict | None = None):
        answer = self.driver.request(method, f"/session/{self.session}{path}", json=payload)
        assert answer.status_code == 200, answer.text[:500]
        return answer.json()["value"]

    def script(self, source: str, *args):
        return self.call("POST", "/execute/sync", {"script": source, "args": list(args)})

    def wait_for(self, source: str, timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        while not (value := self.script(source)):
            assert time.monotonic() < deadline, f"the page never satisfied: {source}"
            time.sleep(0.1)
        return value

    def click(self, css: str, x: float, y: float) -> None:
        """A real pointer click at (x, y) pixels from the element's centre."""
        element = self.call("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]
        self.call("POST", "/actions", {"actions": [{"type": "pointer", "id": "mouse", "actions": [
            {"type": "pointerMove", "origin": {ELEMENT: element}, "x": int(x), "y": int(y)},
            {"type": "pointerDown", "button": 0}, {"type": "pointerUp", "button": 0}]}]})


@pytest.fixture
def browser(tmp_path) -> Iterator[Browser]:
    chromium = _executable("chromium", "/usr/bin/chromium")
    chromedriver = _executable("chromedriver", "/usr/bin/chromedriver")
    port = _free_port()
    process = subprocess.Popen([chromedriver, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as driver:
            deadline = time.monotonic() + 15
            while True:
                try:
                    if driver.get("/status").json()["value"]["ready"]:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline and process.poll() is None, "chromedriver did not start"
                time.sleep(0.05)
            options = {"binary": chromium, "args": [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]}
            created = driver.post("/session", json={"capabilities": {"alwaysMatch": {
                "browserName": "chrome", "goog:chromeOptions": options}}})
            assert created.status_code == 200, created.text[:500]
            session = created.json()["value"]["sessionId"]
            try:
                yield Browser(driver, session)
            finally:
                driver.delete(f"/session/{session}")
    finally:
        process.terminate()
        process.wait(timeout=10)


def forecast_line(browser: Browser) -> Callable[[], str]:
    return lambda: browser.script(f"return document.querySelector('{STVFM} .series-values').textContent")


def numbers(line: str) -> list[float]:
    return [float(value) for value in line.split()[1:]]


def test_the_page_shows_each_model_its_forecast_maps_and_a_clicked_cells_series(served_models, served, service, client,
                                                                                 browser, tmp_path):
    url, _ = service
    values, times = frames(served, served.history_steps)
    for model in served_models.values():
        client.post("/v1/observe", json=body(model, values, times))
    browser.call("POST", "/url", {"url": f"{url}/"})
    for name, model in served_models.items():
        section = f'section[data-model="{name}"]'
        maps = f"document.querySelectorAll('{section} canvas.map.forecast').length"
        assert browser.wait_for(f"return {maps} > 0 && {maps}") == model.horizon
        assert browser.script(f"return document.querySelector('{section} h2').textContent") == name
        assert browser.script(f"return document.querySelectorAll('{section} canvas.map.observed').length") == 1

    # a click on the top-left cell of the second forecast map shows that cell's observed and forecast numbers
    size = browser.script("return Number(document.querySelector('canvas.map.forecast').dataset.cellSize)")
    width, height = served.width * size, served.height * size
    browser.click(f"{STVFM} figure:nth-child(3) canvas", size / 2 - width / 2, size / 2 - height / 2)
    browser.wait_for(f"return document.querySelector('{STVFM} .series-values').textContent.startsWith('cell (y=0, x=0)')")
    _, observed_line, forecast_text = forecast_line(browser)().splitlines()
    forecast = client.get("/v1/forecast", params={"model": served.name}).json()
    assert numbers(observed_line) == [round(float(v), 2) for v in values[:, 0, 0, 0]]
    np.testing.assert_allclose(numbers(forecast_text), np.array(forecast["values"])[:, 0, 0, 0], atol=0.005)

    # an observation arriving refreshes the page's maps and numbers
    later = values[-1:] + 10
    client.post("/v1/observe", json=body(served, later, times[-1:] + np.timedelta64(served.interval_minutes, "m")))
    newest = next(model["newest"] for model in client.get("/v1/models").json()["models"] if model["name"] == served.name)
    browser.wait_for(f"return document.querySelector('{STVFM}').dataset.newest === '{newest}'")
    refreshed = client.get("/v1/forecast", params={"model": served.name}).json()
    np.testing.assert_allclose(numbers(forecast_line(browser)().splitlines()[2]),
                               np.array(refreshed["values"])[:, 0, 0, 0], atol=0.005)

    shot = tmp_path / "serve-page.png"
    shot.write_bytes(base64.b64decode(browser.call("GET", "/screenshot")))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 5_000
