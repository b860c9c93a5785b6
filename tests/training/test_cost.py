"""``stvfm cost``: a run's FLOPs and its time on this host, measured through fit before the run is spent."""

from __future__ import annotations

import json

import pytest

from stvfm.cli.main import main
from stvfm.data.prepared import prepare_data
from stvfm.errors import ConfigError
from stvfm.testing import write_synthetic_city
from stvfm.training.config import protocol_for
from stvfm.training.cost import cost
from stvfm.training.flops import window_flops
from stvfm.training.recipes import resolve_run_config


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    return write_synthetic_city(tmp_path_factory.mktemp("city") / "city.npz", days=10, height=4, width=4)


def resolve_shape(city):
    config = resolve_run_config({"model": "stid", "dataset": str(city), "out": "unused"})
    return prepare_data(config.dataset, protocol_for(config)).forecast_shape


def test_a_runs_cost_is_its_counted_work_and_its_timed_batches(city, tmp_path):
    config = resolve_run_config({"model": "stid", "dataset": str(city), "out": str(tmp_path / "never"), "batch_size": 16,
                                 "max_epochs": 7, "accelerator": "cpu"})
    estimate = cost(config, timed_batches=2, warmup_batches=1)
    assert not (tmp_path / "never").exists()  # the run's own folder is never touched
    windows = estimate.train_windows
    assert estimate.train_batches == -(-windows // 16) and estimate.batch_size == 16
    counted = window_flops("stid", resolve_shape(city), config.model_options)
    assert estimate.train_gflop_per_window == pytest.approx(counted.train / 1e9)
    assert estimate.total_pflop == pytest.approx(7 * estimate.epoch_tflop / 1e3)
    assert estimate.train_batch_seconds > 0 and estimate.validation_seconds > 0 and estimate.peak_tflops > 0
    assert estimate.hours_at_most * 3600 == pytest.approx(7 * (estimate.train_batches * estimate.train_batch_seconds
                                                                + estimate.validation_seconds))
    assert estimate.achieved_tflops == pytest.approx(estimate.train_gflop_per_window * 16 / estimate.train_batch_seconds / 1e3)
    assert json.loads(json.dumps(estimate.as_dict()))["utilisation"] == pytest.approx(estimate.utilisation)


def test_closed_form_models_and_too_few_windows_are_refused(city, tmp_path):
    with pytest.raises(ConfigError, match="closed form"):
        cost(resolve_run_config({"model": "ha-week", "dataset": str(city), "out": str(tmp_path)}))
    with pytest.raises(ConfigError, match="too few to time"):
        cost(resolve_run_config({"model": "stid", "dataset": str(city), "out": str(tmp_path), "batch_size": 64}),
             timed_batches=50)


def test_the_cli_prints_the_hours_at_most_and_writes_every_figure(city, tmp_path, capsys):
    out = tmp_path / "cost.json"
    assert main(["cost", "-m", "stid", "-d", str(city), "--batch-size", "16", "--max-epochs", "3", "--accelerator", "cpu",
                 "--timed-batches", "2", "--warmup-batches", "1", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "hours at most here" in printed and "PFLOP at most" in printed
    figures = json.loads(out.read_text())
    assert figures["max_epochs"] == 3 and figures["batch_size"] == 16 and figures["hours_at_most"] > 0
    assert main(["cost", "-m", "last", "-d", str(city)]) == 2
    assert "closed form" in capsys.readouterr().err
