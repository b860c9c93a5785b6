"""A 128 x 128 city: ST-VFM fits and predicts it (tiny backbone), and windows stay views of one series."""

from __future__ import annotations

import numpy as np
import torch

from stvfm.cli.main import main
from stvfm.data.series import GridSeries
from stvfm.data.sources.generic import save_generic_npz


def test_stvfm_fits_and_predicts_a_128_by_128_grid(tmp_path, capsys):
    # 8x8 patches (256 tokens a frame) keep this a test; the default 2x2 patches (4096 tokens)
    # run too, at the cost measured in docs/benchmark.md.
    rng = np.random.default_rng(0)
    steps = 24 * 8
    values = rng.gamma(2.0, 3.0, size=(steps, 1, 128, 128)).astype(np.float32)
    timestamps = np.datetime64("2024-05-06T00:00", "s") + np.arange(steps) * np.timedelta64(3600, "s")
    city = tmp_path / "big_city.npz"
    save_generic_npz(GridSeries("big_city", values, timestamps, 60, ("flow",)), city)
    run = tmp_path / "run"
    code = main(["fit", "--model", "stvfm", "--dataset", str(city), "--out", str(run), "--backbone", "tiny",
                 "--weights", "random", "--set", "temporal_dim=16", "--set", "temporal_heads=2",
                 "--set", "encoder_layers=1", "--set", "decoder_layers=1", "--set", "patch=8", "--max-epochs", "1",
                 "--limit-train-batches", "2", "--batch-size", "2", "--accelerator", "cpu"])
    assert code == 0, capsys.readouterr().err
    forecast = tmp_path / "forecast.npz"
    code = main(["predict", "--checkpoint", str(run / "checkpoints" / "best.ckpt"), "--input", str(city),
                 "--output", str(forecast)])
    assert code == 0, capsys.readouterr().err
    saved = np.load(forecast)
    assert saved["values"].shape == (6, 1, 128, 128) and np.isfinite(saved["values"]).all()


def test_windows_are_views_of_the_series_not_copies():
    """Memory per window is a few index integers: inputs and targets are slices of the one series."""
    from stvfm.data.windows import WindowDataset

    steps = 24 * 8
    values = np.random.default_rng(0).random((steps, 1, 128, 128), dtype=np.float32)
    time_feats = np.zeros((steps, 2), dtype=np.int64)
    windows = WindowDataset(values, time_feats, (0, steps), history=6, horizon=6, slots_per_day=24)
    item = windows[17]
    series = windows.values.untyped_storage().data_ptr()
    assert item["x"].untyped_storage().data_ptr() == series == item["y"].untyped_storage().data_ptr()
    torch.testing.assert_close(item["y"], torch.from_numpy(values[23:29]))
