"""The HTML report: one self-contained page, checked as headless Chromium renders it."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from report_helpers import write_run

from stvfm.cli.main import main
from stvfm.errors import DataError
from stvfm.reports.html import report

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: Headless, offline and stateless: no GPU, no network of its own, no profile shared with another run.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")
#: Appended to a copy of the page only: after load, each image's decoded size, for --dump-dom to show.
MEASURE_IMAGES = """<script>window.addEventListener("load", () => { for (const img of document.images)
  img.setAttribute("data-decoded", img.naturalWidth + "x" + img.naturalHeight); });</script>"""


def write_runs(folder: Path) -> list[Path]:
    budget = {"epochs": 1, "stop_reason": "time cap", "train_steps": 17, "batches_per_epoch": 383,
              "settings": {"limit_train_batches": 300}}
    return [write_run(folder / "stvfm", rmse=3.1, **budget),
            write_run(folder / "ha-week", model="ha-week", rmse_scale=1.2, with_logs=False, rmse=2.4, variant=None),
            write_run(folder / "last", model="last", rmse_scale=1.5, with_logs=False, rmse=2.9, variant=None)]


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[list[Path], Path]:
    """Three tiny runs and the report `stvfm report` writes of them (built once: the figures are the cost)."""
    folder = tmp_path_factory.mktemp("report")
    runs, out = write_runs(folder), folder / "report.html"
    assert main(["report", *map(str, runs), "--out", str(out)]) == 0
    return runs, out


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=120, check=False)


def test_the_report_is_one_self_contained_page(written):
    page = written[1].read_text()
    assert "http://" not in page and "https://" not in page and "<script" not in page and "<link" not in page
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 6  # per-step and per-window errors; forecast maps and error map of ST-VFM and of the best other run
    for encoded in images:
        pixels = imread(io.BytesIO(base64.b64decode(encoded)), format="png")
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100 and np.ptp(pixels) > 0
    rows = re.findall(r"<tr><td>([^<]+)</td>", page)
    assert rows == ["ha-week", "last", "stvfm (full)"]  # best RMSE first
    assert "17 training steps, about 4% of one epoch (time cap): not converged" in page and "closed form" in page
    assert "stvfm (full) beside ha-week" in page  # the headline model beside the best baseline


def test_runs_of_other_test_windows_or_a_single_run_are_refused(tmp_path):
    runs = write_runs(tmp_path)
    with pytest.raises(DataError, match="at least two"):
        report(runs[:1], tmp_path / "one.html")
    other = write_run(tmp_path / "other-span", model="last")
    arrays = dict(np.load(other / "predictions.npz"))
    arrays["first_step_time"] = np.roll(arrays["first_step_time"], 1)
    np.savez_compressed(other / "predictions.npz", **arrays)
    with pytest.raises(DataError, match="other-span: tested on other windows"):
        report([runs[0], other], tmp_path / "mixed.html")
    assert not (tmp_path / "mixed.html").exists()  # nothing half-written


@pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason="needs Debian's chromium for the headless rendering")
def test_chromium_shows_the_table_and_decodes_every_image(written, tmp_path):
    out = written[1]
    measured = tmp_path / "measured.html"
    measured.write_text(out.read_text().replace("</body>", MEASURE_IMAGES + "</body>"))
    dom = chromium(tmp_path, "--virtual-time-budget=5000", "--dump-dom", measured.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert re.findall(r"<tr><td>([^<]+)</td>", dom.stdout) == ["ha-week", "last", "stvfm (full)"]
    sizes = re.findall(r'data-decoded="(\d+)x(\d+)"', dom.stdout)
    assert len(sizes) == 6 and all(int(width) > 100 and int(height) > 100 for width, height in sizes)
    screenshot = tmp_path / "report.png"
    shot = chromium(tmp_path, "--window-size=1100,1400", f"--screenshot={screenshot}", out.as_uri())
    assert shot.returncode == 0 and screenshot.is_file(), shot.stderr[-2000:]
    pixels = imread(screenshot)
    assert pixels.shape[:2] == (1400, 1100) and np.ptp(pixels[..., :3]) > 0.5  # drawn, not a blank page
