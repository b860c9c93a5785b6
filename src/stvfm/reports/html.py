"""One self-contained HTML page comparing finished runs: what a newcomer opens after ``make demo``.

The page holds the comparison table (each row's budget in words, the best row's paired test against
each), the per-step and per-window test errors of every run, and the forecast and error maps of the
headline run (ST-VFM, where one is given) beside the best other run on the same test window. Figures are
matplotlib PNGs inlined as base64: no external file, script or
font, so the page reads the same offline, mailed, or opened from a CI artefact.
"""

from __future__ import annotations

import base64
import io
from html import escape
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from stvfm.atomic import write_text_atomic
from stvfm.errors import DataError
from stvfm.reports.plots import (
    error_map_figure,
    forecast_grids_figure,
    horizon_curves_figure,
    load_predictions,
    pick_windows,
    window_errors_figure,
)
from stvfm.reports.tables import COLUMNS, comparison_rows, load_metrics

#: The model a report puts first when it is among the runs: the method this project is about.
HEADLINE_MODEL = "stvfm"

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ccc; padding: 0.3em 0.7em; text-align: left; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
.maps { display: flex; flex-wrap: wrap; gap: 1em; }
.maps figure { margin: 0; flex: 1 1 480px; }
img { max-width: 100%; height: auto; }
p.note { color: #555; font-size: 0.9em; }
"""


def png_data_uri(fig: Figure) -> str:
    """A figure as an inline ``data:`` URI (PNG, base64)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _label(metrics: dict) -> str:
    return metrics["model"] + (f" ({metrics['variant']})" if metrics.get("variant") else "")


def _pair(runs: list[Path], metrics: list[dict]) -> tuple[int, int]:
    """Indices of the headline run (the best ST-VFM run, else the best run) and of the best other run."""
    by_rmse = sorted(range(len(runs)), key=lambda index: metrics[index]["rmse"])
    headline = next((index for index in by_rmse if metrics[index]["model"] == HEADLINE_MODEL), by_rmse[0])
    return headline, next(index for index in by_rmse if index != headline)


def _same_test_windows(runs: list[Path], arrays: list[dict[str, np.ndarray]]) -> None:
    first = arrays[0]
    for run, other in zip(runs[1:], arrays[1:], strict=True):
        if not (np.array_equal(first["first_step_time"], other["first_step_time"])
                and first["target"].shape == other["target"].shape):
            raise DataError(f"{run}: tested on other windows than {runs[0]} (another dataset, span or channel); "
                            "a report compares runs of one test split")


def _table(runs: list[Path]) -> str:
    numeric = {"RMSE", "MAE", "windows"}
    head = "".join(f"<th>{escape(column)}</th>" for column in COLUMNS)
    body = "".join("<tr>" + "".join(f'<td class="number">{escape(cell)}</td>' if column in numeric
                                    else f"<td>{escape(cell)}</td>" for column, cell in zip(COLUMNS, row, strict=True)) + "</tr>"
                   for row in comparison_rows(runs))
    return f'<table id="comparison"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _figure(fig: Figure, caption: str) -> str:
    return f'<figure><img src="{png_data_uri(fig)}" alt="{escape(caption)}"><figcaption>{escape(caption)}</figcaption></figure>'


def report(runs: list[str | Path], out: str | Path, title: str | None = None) -> Path:
    """Write the HTML comparison of ``runs`` (at least two run folders tested on one split) to ``out``."""
    folders = [Path(run) for run in runs]
    if len(folders) < 2:
        raise DataError("a report compares at least two run folders")
    metrics = [load_metrics(folder) for folder in folders]
    arrays = [load_predictions(folder) for folder in folders]
    _same_test_windows(folders, arrays)
    headline, other = _pair(folders, metrics)
    window = pick_windows(arrays[headline]["target"], 1)
    first_step = str(arrays[headline]["first_step_time"][window[0]]).replace("T", " ")
    dataset, channel = metrics[0]["dataset"], metrics[0]["channel"]
    names = [_label(metrics[headline]), _label(metrics[other])]
    maps = "".join(_figure(forecast_grids_figure(arrays[index], window, name), f"{name}: forecast and |error|, "
                           f"test window from {first_step}") for index, name in zip((headline, other), names, strict=True))
    error_maps = "".join(_figure(error_map_figure(arrays[index], name), f"{name}: mean absolute error per cell "
                                 "over the test split") for index, name in zip((headline, other), names, strict=True))
    headline_first = [headline, *(index for index in range(len(folders)) if index != headline)]
    per_window = _figure(window_errors_figure([(_label(metrics[index]), arrays[index]) for index in headline_first]),
                         f"each test window's error, and each run's per-window MSE minus {names[0]}'s")
    page_title = title or f"stvfm: {dataset}, channel {channel}, test split"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(page_title)}</title><style>{STYLE}</style></head>
<body>
<h1>{escape(page_title)}</h1>
<p class="note">{len(folders)} runs on {arrays[0]["target"].shape[0]} test windows, errors in original units.
Each row says its training budget: a short run is not a converged model.</p>
<h2>Test RMSE and MAE</h2>
{_table(folders)}
<h2>Error per forecast step</h2>
{_figure(horizon_curves_figure(folders), "test RMSE and MAE per forecast step")}
<h2>Error per test window</h2>
<p class="note">A pooled gap is often made in a few busy windows, and neighbouring windows share most of their
target steps: the table's last column tests the best row against each window by window (Diebold-Mariano,
variance over one day of lags), so a gap it calls "not separated" is within this test split's own noise.</p>
{per_window}
<h2>{escape(names[0])} beside {escape(names[1])}</h2>
<p class="note">The busiest test window: truth, forecast and absolute error per step.</p>
<div class="maps">{maps}</div>
<div class="maps">{error_maps}</div>
</body></html>
"""
    write_text_atomic(out, page)
    return Path(out)
