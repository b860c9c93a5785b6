"""Run-folder figures: each writes a PNG, classical runs skip loss curves, bad input is one DataError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from report_helpers import write_run

from stvfm.cli.main import main
from stvfm.errors import DataError
from stvfm.reports.plots import (
    load_predictions,
    pick_windows,
    plot_error_map,
    plot_forecast_grids,
    plot_horizon_curves,
    plot_loss_curves,
    plot_run,
    plot_window_errors,
    read_loss_history,
    window_errors_figure,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    assert path.is_file() and path.read_bytes()[:8] == PNG_SIGNATURE and path.stat().st_size > 1000


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return write_run(tmp_path / "run")


def test_forecast_grids_png(run_dir, tmp_path):
    assert_png(plot_forecast_grids(run_dir, tmp_path / "grids.png", windows=2))


def test_pick_windows_takes_the_fullest_window_of_each_stretch():
    totals = np.array([1.0, 5.0, 2.0, 9.0, 3.0, 0.0])
    assert pick_windows(totals.reshape(6, 1), 3) == [1, 3, 4]


def test_error_map_png(run_dir, tmp_path):
    assert_png(plot_error_map(run_dir, tmp_path / "error.png"))


def test_horizon_curves_png(run_dir, tmp_path):
    other = write_run(tmp_path / "other", model="last", rmse_scale=1.5, with_logs=False)
    assert_png(plot_horizon_curves([run_dir, other], tmp_path / "horizon.png"))


def test_window_errors_plot_each_runs_gap_to_the_first_window_by_window(run_dir, tmp_path):
    other = write_run(tmp_path / "other", model="last", with_logs=False)
    saved = dict(np.load(other / "predictions.npz"))
    saved["prediction"] = saved["prediction"] + np.arange(5, dtype=np.float32).reshape(5, 1, 1, 1, 1)  # worse, later
    np.savez(other / "predictions.npz", **saved)
    first = np.load(run_dir / "predictions.npz")
    mse = [((saved["prediction"] - saved["target"]) ** 2).reshape(5, -1).mean(axis=1),
           ((first["prediction"] - first["target"]) ** 2).reshape(5, -1).mean(axis=1)]
    fig = window_errors_figure([("stvfm", load_predictions(run_dir)), ("last", load_predictions(other))])
    np.testing.assert_allclose(fig.axes[0].lines[1].get_ydata(), np.sqrt(mse[0]), rtol=1e-5)
    np.testing.assert_allclose(fig.axes[1].lines[0].get_ydata(), mse[0] - mse[1], rtol=1e-4, atol=1e-4)
    assert_png(plot_window_errors([run_dir, other], tmp_path / "windows.png"))
    saved["first_step_time"] = np.roll(saved["first_step_time"], 1)[::-1]  # other windows
    saved["first_step_time"][0] = "2017-01-01T00:00:00"
    np.savez(other / "predictions.npz", **saved)
    with pytest.raises(DataError, match="other windows"):
        plot_window_errors([run_dir, other], tmp_path / "refused.png")


def test_loss_history_keeps_one_value_per_epoch(run_dir):
    history = read_loss_history(run_dir)
    assert history["train/loss_epoch"] == ([0, 1], [0.85, 0.55])
    assert history["val/loss"] == ([0, 1], [0.8, 0.5])


def test_loss_curves_png(run_dir, tmp_path):
    assert_png(plot_loss_curves(run_dir, tmp_path / "loss.png"))


def test_run_without_logs_has_no_loss_curves_but_other_plots(tmp_path):
    classical = write_run(tmp_path / "classical", model="ha-week", with_logs=False)
    with pytest.raises(DataError, match="metrics.csv"):
        plot_loss_curves(classical, tmp_path / "loss.png")
    written = plot_run(classical)
    assert [path.name for path in written] == ["forecast_grids.png", "error_map.png"]
    assert all(path.parent == classical / "plots" for path in written)
    for path in written:
        assert_png(path)


def test_plot_run_writes_all_three(run_dir, tmp_path):
    written = plot_run(run_dir, tmp_path / "figures")
    assert [path.name for path in written] == ["forecast_grids.png", "error_map.png", "loss_curves.png"]
    for path in written:
        assert_png(path)


def test_missing_predictions_is_a_data_error_naming_the_file(run_dir, tmp_path):
    (run_dir / "predictions.npz").unlink()
    with pytest.raises(DataError, match="predictions.npz"):
        plot_forecast_grids(run_dir, tmp_path / "grids.png")
    assert not (tmp_path / "grids.png").exists()


def test_cli_plot_writes_into_the_run_folder(run_dir):
    assert main(["plot", str(run_dir)]) == 0
    assert_png(run_dir / "plots" / "loss_curves.png")


def test_cli_plot_compare_adds_horizon_and_window_curves(run_dir, tmp_path, capsys):
    other = write_run(tmp_path / "other", model="last", with_logs=False)
    out = tmp_path / "figures"
    assert main(["plot", str(run_dir), "--compare", str(other), "--out", str(out)]) == 0
    assert_png(out / "horizon_curves.png")
    assert_png(out / "window_errors.png")
    printed = capsys.readouterr().out.replace("\n", "")
    assert "horizon_curves.png" in printed and "window_errors.png" in printed
