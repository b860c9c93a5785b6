"""The CLI: commands reachable, results written, and bad input as one line + exit 2, nothing written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from stvfm.cli.main import main
from stvfm.models.registry import list_models
from stvfm.testing import SMALL_MODEL_OPTIONS, write_synthetic_city


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_data_list_finds_the_shared_datasets(capsys, shared_data_dir):
    code, out, _ = run(capsys, "data", "list", "--data-root", str(shared_data_dir))
    assert code == 0
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 3}
    assert "yes" in rows["bikenyc1"] and "yes" in rows["taxinyc1"] and "no" in rows["crowd"]


def test_data_info(capsys, shared_data_dir):
    code, out, _ = run(capsys, "data", "info", "taxinyc1", "--channel", "0", "--data-root", str(shared_data_dir))
    assert code == 0 and "2016-01-01" in out and "2880" in out


def test_evaluate_ha_week_writes_metrics(capsys, tmp_path, shared_data_dir):
    out = tmp_path / "ha"
    code, _, err = run(capsys, "evaluate", "--model", "ha-week", "--dataset", "taxinyc1", "--channel", "0",
                       "--out", str(out), "--data-root", str(shared_data_dir))
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    # The protocol's reference numpy computation gave RMSE ~15.9 / MAE ~5.3 on this setting.
    assert metrics["rmse"] == pytest.approx(15.87, abs=0.05) and metrics["mae"] == pytest.approx(5.32, abs=0.05)
    assert metrics["model"] == "ha-week" and metrics["n_windows"] == 421
    assert metrics["settings"]["channel"] == 0


TINY_OPTIONS = {
    "stvfm": ["backbone=tiny", "weights=random", "temporal_dim=16", "temporal_heads=2"],
    "stllm": ["weights=random", "gpt2_overrides={n_embd: 32, n_layer: 2, n_head: 2}", "llm_layers=2"],
}
CLASSICAL = {entry.name for entry in list_models() if not entry.cls.trainable}


@pytest.fixture(scope="module")
def small_city(tmp_path_factory):
    """20 days of hourly counts on a 5x3 grid: enough for daily and weekly context."""
    return write_synthetic_city(tmp_path_factory.mktemp("city") / "city.npz")


@pytest.mark.parametrize("model", [entry.name for entry in list_models()])
def test_every_model_runs_through_the_cli(capsys, tmp_path, small_city, model):
    out = tmp_path / model
    if model in CLASSICAL:
        args = ["evaluate", "--model", model, "--dataset", str(small_city), "--out", str(out)]
        if model == "arima":
            args += ["--set", "workers=1"]
    else:
        args = ["fit", "--model", model, "--dataset", str(small_city), "--out", str(out), "--max-epochs", "1",
                "--limit-train-batches", "2", "--batch-size", "16", "--accelerator", "cpu"]
        # small widths: this proves the CLI path of every model; default sizes run on the meta device
        small = [f"{key}={value}" for key, value in SMALL_MODEL_OPTIONS.get(model, {}).items()]
        for option in TINY_OPTIONS.get(model, small):
            args += ["--set", option]
    code, _, err = run(capsys, *args)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == model and np.isfinite(metrics["rmse"]) and metrics["n_windows"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evaluate", "--model", "last", "--dataset", "nowhere"], "unknown dataset 'nowhere'"),
        (["evaluate", "--model", "nomodel", "--dataset", "bikenyc1"], "unknown model 'nomodel'"),
        (["evaluate", "--model", "last", "--dataset", "bikenyc1", "--channel", "5"], "channel 5 out of range"),
        (["evaluate", "--model", "last", "--dataset", "missing.npz"], "missing.npz: file not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, shared_data_dir, args, message):
    out = tmp_path / "out"
    code, _, err = run(capsys, *args, "--out", str(out), "--data-root", str(shared_data_dir))
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (out / "metrics.json").exists()


def test_an_inf_file_is_rejected_and_a_nan_is_a_gap(capsys, tmp_path):
    values = np.ones((100, 1, 4, 4), dtype=np.float32)
    values[3, 0, 1, 1] = np.inf
    path = tmp_path / "bad.npz"
    times = np.datetime64("2024-01-01T00:00") + np.arange(100) * np.timedelta64(1, "h")
    np.savez(path, values=values, timestamps=times)
    code, _, err = run(capsys, "evaluate", "--model", "last", "--dataset", str(path), "--out", str(tmp_path / "o"))
    assert code == 2 and "bad.npz" in err and "infinite" in err
    assert not (tmp_path / "o" / "metrics.json").exists()
    # the test split is steps 85..99: 4 windows of 6 targets x 16 cells; step 95 of one cell is a target of all 4
    values[3, 0, 1, 1], values[95, 0, 2, 2] = np.nan, np.nan
    np.savez(path, values=values, timestamps=times)
    code, out, _ = run(capsys, "evaluate", "--model", "last", "--dataset", str(path), "--out", str(tmp_path / "o"),
                       "--gaps", "slot-mean")
    saved = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert code == 0 and saved["settings"]["gap_fill"] == "slot-mean" and saved["protocol_card"]["gap_fill"] == "slot-mean"
    assert (saved["n_points"], saved["protocol_card"]["n_targets"]) == (4 * 6 * 16 - 4, 4 * 6 * 16)
    assert "targets scored: 380 (of 384)" in out


def test_fit_then_predict_on_a_generic_file(capsys, tmp_path, small_city):
    source = small_city
    run_dir = tmp_path / "run"
    code, _, err = run(capsys, "fit", "--model", "stid", "--dataset", str(source), "--out", str(run_dir),
                       "--max-epochs", "1", "--batch-size", "64", "--accelerator", "cpu")
    assert code == 0, err
    forecast = tmp_path / "forecast.npz"
    code, out, err = run(capsys, "predict", "--checkpoint", str(run_dir / "checkpoints" / "best.ckpt"),
                         "--input", str(source), "--output", str(forecast))
    assert code == 0, err
    saved = np.load(forecast)
    assert saved["values"].shape == (6, 1, 5, 3) and np.isfinite(saved["values"]).all()
    assert str(saved["timestamps"][0]).startswith("2024-01-21T00:00")


def test_fine_tuning_starts_from_the_checkpoint_weights(capsys, tmp_path, small_city):
    first = tmp_path / "first"
    common = ["--dataset", str(small_city), "--batch-size", "64", "--accelerator", "cpu"]
    code, _, err = run(capsys, "fit", "--model", "stid", "--out", str(first), "--max-epochs", "1", *common)
    assert code == 0, err
    best = first / "checkpoints" / "best.ckpt"
    # zero further epochs: the fine-tuned run tests exactly the weights it started from
    code, _, err = run(capsys, "fit", "--model", "stid", "--out", str(tmp_path / "again"), "--max-epochs", "0",
                       "--init-from", str(best), *common)
    assert code == 0, err
    before, after = (json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("first", "again"))
    assert after["rmse"] == pytest.approx(before["rmse"], rel=1e-6) and after["settings"]["init_from"] == str(best)
    code, _, err = run(capsys, "fit", "--model", "patchtst", "--out", str(tmp_path / "other"), "--max-epochs", "0",
                       "--init-from", str(best), *common)
    assert code == 2 and "holds model 'stid'" in err and not (tmp_path / "other" / "metrics.json").exists()


def test_corrupt_checkpoint_is_one_line(capsys, tmp_path):
    bad = tmp_path / "best.ckpt"
    bad.write_bytes(b"not a checkpoint at all")
    code, _, err = run(capsys, "test", "--checkpoint", str(bad), "--out", str(tmp_path / "o"))
    assert code == 2 and "best.ckpt" in err and len(err.strip().splitlines()) == 1


def test_data_fetch_from_a_mirror_then_load(capsys, tmp_path, shared_data_dir):
    """`stvfm data fetch` against a local HTTP mirror of the real files; the result loads and verifies."""
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(shared_data_dir / "taxinyc1"))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        root = tmp_path / "root"
        code, out, err = run(capsys, "data", "fetch", "taxinyc1", "--url", f"http://127.0.0.1:{server.server_port}/",
                             "--data-root", str(root))
    finally:
        server.shutdown()
    assert code == 0, err
    code, out, err = run(capsys, "data", "info", "taxinyc1", "--data-root", str(root))
    assert code == 0 and "2880" in out


def test_default_run_folders_live_under_stvfm_runs(capsys, tmp_path, monkeypatch):
    from stvfm.runs_root import runs_root
    from stvfm.training.accuracy_check import AccuracyCheckConfig

    monkeypatch.delenv("STVFM_RUNS", raising=False)
    assert str(runs_root()) == "runs"
    monkeypatch.setenv("STVFM_RUNS", str(tmp_path / "elsewhere"))
    assert AccuracyCheckConfig().out == str(tmp_path / "elsewhere" / "bench-accuracy")
    # reproduce without --out: runs and report under $STVFM_RUNS/reproduce (--report-only trains nothing)
    code, _, _ = run(capsys, "reproduce", "--experiment", "lambda", "--dataset", "bikenyc1", "--quick", "--report-only")
    assert code == 0 and (tmp_path / "elsewhere" / "reproduce" / "lambda-bikenyc1.md").is_file()
