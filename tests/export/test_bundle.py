"""An export's promises: the backbone named, not copied; a tampered folder refused in one line before
anything is built; bad input refused by name; and test / predict reading an export like a checkpoint."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch
from export_helpers import fit_tiny, window_inputs
from safetensors.torch import load_file, save_file

import stvfm
from stvfm.backbones import create_backbone
from stvfm.cli.main import main
from stvfm.errors import CheckpointError, ConfigError, DataError, OutputError
from stvfm.export import forecaster as forecaster_module
from stvfm.export.writer import export_run
from stvfm.testing import SMALL_BACKBONE_CONFIGS


@pytest.fixture(scope="module")
def last_export(city, tmp_path_factory):
    """A run of the persistence model and its export (the cheapest model: no weights to speak of)."""
    folder = tmp_path_factory.mktemp("last")
    fit_tiny("last", city, folder / "run")
    export_run(folder / "run", folder / "export")
    return folder / "run", folder / "export"


@pytest.fixture
def copy_of(tmp_path):
    def copy(export):
        return shutil.copytree(export, tmp_path / "copy")
    return copy


def test_a_pretrained_backbone_is_named_by_provider_and_digest_not_copied(city, tmp_path):
    """A path: provider gives the frozen ViT (a tiny DINOv2 here): the export stores none of its tensors,
    rebuilds it on load, forecasts bit for bit as the run did, and refuses other weights under that name."""
    small = SMALL_BACKBONE_CONFIGS["dinov2-s"]
    torch.manual_seed(1)
    weights_file = tmp_path / "vit.safetensors"
    save_file(create_backbone("dinov2-s", "random", **small).state_dict(), weights_file)
    fit_tiny("stvfm", city, tmp_path / "run", weights=f"path:{weights_file}", backbone_overrides=small)
    export_run(tmp_path / "run", tmp_path / "export")
    stored = load_file(tmp_path / "export" / "weights.safetensors")
    assert not [name for name in stored if name.startswith("backbone.") and ".adapters." not in name
                and not name.startswith("backbone.adapters.")]
    frozen = json.loads((tmp_path / "export" / "config.json").read_text())["frozen"]
    assert frozen["provider"] == "path" and frozen["names"] and all(n.startswith("backbone.") for n in frozen["names"])
    forecaster = stvfm.load(tmp_path / "export")
    histories, stamps, _ = window_inputs(forecaster)
    future, _ = forecaster.forecast_batch(histories, stamps)
    assert np.array_equal(future, np.load(tmp_path / "run" / "predictions.npz")["prediction"])

    torch.manual_seed(2)  # other weights at the provider's address: not the backbone the export names
    save_file(create_backbone("dinov2-s", "random", **small).state_dict(), weights_file)
    with pytest.raises(CheckpointError, match="sha256"):
        stvfm.load(tmp_path / "export")


@pytest.mark.parametrize("damage, message", [
    (lambda folder: (folder / "weights.safetensors").write_bytes(b"x" + (folder / "weights.safetensors").read_bytes()[1:]),
     "weights.safetensors: sha256 differs"),
    (lambda folder: (folder / "config.json").unlink(), "config.json: listed in the manifest but missing"),
    (lambda folder: (folder / "manifest.json").unlink(), "manifest.json: missing"),
    (lambda folder: (folder / "manifest.json").write_text("{"), "manifest.json: not valid JSON"),
])
def test_a_damaged_export_is_refused_before_any_model_is_built(last_export, copy_of, monkeypatch, damage, message):
    folder = copy_of(last_export[1])
    damage(folder)
    monkeypatch.setattr(forecaster_module, "build_checkpoint_model",
                        lambda *args: pytest.fail("a model was built from a damaged export"))
    with pytest.raises(CheckpointError, match=message):
        stvfm.load(folder)


def test_the_cli_refuses_a_tampered_export_in_one_line(last_export, copy_of, city, tmp_path, capsys):
    folder = copy_of(last_export[1])
    card = json.loads((folder / "card.json").read_text())
    (folder / "card.json").write_text(json.dumps({**card, "metrics": {**card["metrics"], "mae": 0.0}}))
    code = main(["predict", "--checkpoint", str(folder), "--input", str(city), "--output", str(tmp_path / "f.npz")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "card.json: sha256 differs" in err
    assert not (tmp_path / "f.npz").exists()


def test_input_is_checked_and_named(last_export):
    forecaster = stvfm.load(last_export[1])
    histories, stamps, _ = window_inputs(forecaster)
    history, times = histories[0], stamps[0]
    future, future_times = forecaster.forecast(history, times)
    assert future.shape == (forecaster.horizon, forecaster.channels, *forecaster.grid)
    assert np.array_equal(future_times, times[-1] + np.timedelta64(3600, "s") * np.arange(1, 7))
    nan = history.copy()
    nan[-1, 0, 0, 0] = np.nan
    bad = {
        "shape (6, 1, 2, 4)": (history.transpose(0, 1, 3, 2), times),
        "NaN/inf": (nan, times),
        "the model reads the last 6": (history[1:], times[1:]),
        "5 stamps for 6": (history, times[1:]),
        "not consecutive 60-minute steps": (history, times[::-1]),
        "off the model's 60-minute grid": (history, times + np.timedelta64(60, "s")),
        "not readable as dates": (history, ["yesterday"] * 6),
    }
    for message, (values, stamps_given) in bad.items():
        with pytest.raises(DataError, match=re.escape(message)):
            forecaster.forecast(values, stamps_given)
    with pytest.raises(DataError, match="NaN/inf"):  # one bad window: nothing is forecast
        forecaster.forecast_batch([history, nan], [times, times])


def test_test_and_predict_accept_an_export(last_export, city, tmp_path, capsys):
    run, export = last_export
    assert main(["test", "--checkpoint", str(export), "--out", str(tmp_path / "retest")]) == 0
    again, saved = (np.load(folder / "predictions.npz") for folder in (tmp_path / "retest", run))
    assert np.array_equal(again["prediction"], saved["prediction"])
    assert json.loads((tmp_path / "retest" / "metrics.json").read_text())["export"] == str(export)
    assert main(["predict", "--checkpoint", str(export), "--input", str(city), "--output", str(tmp_path / "f.npz")]) == 0
    forecast, series = np.load(tmp_path / "f.npz"), np.load(city)
    scaler = stvfm.load(export).card["data"]["scaler"]  # persistence repeats the last frame, clamped to the training range
    last = np.clip(series["values"][-1:], scaler["minimum"], scaler["maximum"])
    assert np.allclose(forecast["values"], np.repeat(last, 6, axis=0), rtol=0, atol=1e-5)


def test_export_refuses_before_writing(last_export, tmp_path):
    run, export = last_export
    with pytest.raises(OutputError, match="not empty"):
        export_run(run, export)
    with pytest.raises(ConfigError, match="add --onnx"):
        export_run(run, tmp_path / "q", quantize=True)
    (tmp_path / "unfinished").mkdir()
    with pytest.raises(ConfigError, match="has not finished"):
        export_run(tmp_path / "unfinished", tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "q").exists()
