"""ONNX graphs: ONNX Runtime gives the PyTorch forecasts within 1e-4 (scaled units) on the test split,
or the export says why there is no graph; int8 only on request, its test error measured.

Exporting the recurrent and larger baselines takes seconds each, so the suite checks ST-VFM and a few
quick models; ``STVFM_ONNX_ALL=1 pytest tests/export/test_onnx.py`` checks every registered model."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from export_helpers import fit_tiny, window_inputs

import stvfm
from stvfm.experiments.device_suite import model_options
from stvfm.export.graph import (
    PARITY_TOLERANCE,
    benchmark,
    run_session,
    session,
)
from stvfm.export.writer import export_run
from stvfm.models.registry import build_config, list_models

QUICK = {"stvfm", "last", "ha-week", "linear-ar", "stid", "itransformer", "stllm", "patchtst"}


def _models():
    everything = os.environ.get("STVFM_ONNX_ALL") == "1"
    return [pytest.param(entry.name, marks=() if everything or entry.name in QUICK else
                         pytest.mark.skip(reason="seconds to export; STVFM_ONNX_ALL=1 checks it"))
            for entry in list_models()]


@pytest.mark.parametrize("failure", ["unexpressible", "unfaithful"])
def test_an_export_without_a_faithful_graph_says_why_and_ships_none(failure, city, tmp_path, monkeypatch):
    import stvfm.export.graph as graph

    if failure == "unexpressible":
        def refuse(*_args, **_kwargs):
            raise RuntimeError("an operator ONNX cannot express\nmore detail")

        monkeypatch.setattr(graph, "export_graph", refuse)
    else:
        monkeypatch.setattr(graph, "run_session", lambda ort_session, batch: run_session(ort_session, batch) + 1.0)
    fit_tiny("stid", city, tmp_path / "run")
    record = export_run(tmp_path / "run", tmp_path / "export", onnx=True)["onnx"]
    assert record["file"] is None
    assert record["reason"] == ("no faithful ONNX graph of stid (RuntimeError: an operator ONNX cannot express)"
                                if failure == "unexpressible" else
                                f"ONNX Runtime differs from PyTorch by 1.00e+00 (scaled units) on the test split, "
                                f"over the {PARITY_TOLERANCE:g} allowed")
    manifest = json.loads((tmp_path / "export" / "manifest.json").read_text())["files"]
    assert "model.onnx" not in manifest and not (tmp_path / "export" / "model.onnx").exists()
    assert not (tmp_path / "export" / "onnx.json").exists()


@pytest.mark.parametrize("model", _models())
def test_onnx_runtime_matches_pytorch(model, city, long_city, tmp_path):
    periodic = build_config(model, model_options(model, True))
    fit_tiny(model, long_city if periodic.daily_context or periodic.weekly_context else city, tmp_path / "run")
    record = export_run(tmp_path / "run", tmp_path / "export", onnx=True, quantize=model == "stvfm")["onnx"]
    manifest = json.loads((tmp_path / "export" / "manifest.json").read_text())["files"]
    assert record["file"] == "model.onnx" and "model.onnx" in manifest and "onnx.json" in manifest
    forecaster = stvfm.load(tmp_path / "export")
    histories, stamps, _ = window_inputs(forecaster)
    batch = forecaster.batch([forecaster.check_input(h, s) for h, s in zip(histories, stamps, strict=True)])
    difference = np.abs(run_session(session(tmp_path / "export" / "model.onnx"), batch)
                        - forecaster.predict_scaled(batch).numpy()).max()
    assert difference <= PARITY_TOLERANCE and record["max_abs_diff_scaled"] <= PARITY_TOLERANCE
    if model == "stvfm":
        int8 = record["int8"]
        assert (tmp_path / "export" / "model.int8.onnx").is_file() and "model.int8.onnx" in manifest
        assert int8["mae_change_percent"] == pytest.approx(100 * (int8["mae"] / int8["mae_fp32"] - 1))
        assert int8["max_abs_diff_scaled"] > 0  # it is another model, never passed off as the same numbers


def test_no_int8_graph_unless_asked(city, tmp_path):
    fit_tiny("stid", city, tmp_path / "run")
    record = export_run(tmp_path / "run", tmp_path / "export", onnx=True)["onnx"]
    assert "int8" not in record and not (tmp_path / "export" / "model.int8.onnx").exists()


def test_the_benchmark_times_both_engines_on_the_same_batches(city, tmp_path, capsys):
    from stvfm.cli.main import main

    fit_tiny("stid", city, tmp_path / "run")
    export_run(tmp_path / "run", tmp_path / "export", onnx=True)
    result = benchmark(tmp_path / "export", batch_sizes=(1, 3), repeats=2, threads=1)
    assert [row["batch_size"] for row in result["rows"]] == [1, 3] and result["threads"] == 1
    for row in result["rows"]:
        times = row["ms_per_window"]
        assert set(times) == {"pytorch", "onnxruntime"} and min(times.values()) > 0
        assert row["speedup_vs_pytorch"]["onnxruntime"] == pytest.approx(times["pytorch"] / times["onnxruntime"])
    assert main(["export-bench", str(tmp_path / "export"), "--batch-sizes", "2", "--repeats", "1"]) == 0
    assert "onnxruntime speed-up" in capsys.readouterr().out
