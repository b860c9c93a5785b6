"""Recipes: every learned model has one that builds, config files round-trip, flags win, schedules follow it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from stvfm.cli.main import main
from stvfm.errors import ConfigError
from stvfm.ledger import identity
from stvfm.models.registry import create_model, list_models, resolved_options
from stvfm.shape import ForecastShape
from stvfm.testing import make_batch, write_synthetic_city
from stvfm.training.config import RunConfig
from stvfm.training.optim import build_optimizer, build_schedule
from stvfm.training.recipes import departures, published_settings, recipe, recipe_file, resolve_run_config
from stvfm.training.settings import OptimConfig

LEARNED = [entry.name for entry in list_models() if entry.cls.trainable]
#: What no recipe can give offline or in a unit test: real weights and full-size backbones.
TEST_ONLY = {"stvfm": {"backbone": "tiny", "weights": "random"},
             "stllm": {"weights": "random", "gpt2_overrides": {"n_embd": 32, "n_layer": 2, "n_head": 2}, "llm_layers": 2}}


@pytest.mark.parametrize("model", LEARNED)
def test_every_learned_model_has_a_recipe_that_builds_it(model):
    assert recipe_file(model) is not None, f"{model} has no recipe"
    settings = published_settings(model, "bikenyc1")
    config = resolve_run_config({"model": model, "dataset": "bikenyc1", "out": "x"})
    assert config.optim.lr == settings["optim"]["lr"] and config.max_epochs == settings["max_epochs"]
    options = resolved_options(model, config.model_options)
    shape = ForecastShape(history=6, horizon=6, channels=1, height=8, width=4, slots_per_day=24,
                          daily_context=int(options.get("daily_context", 0)),
                          weekly_context=int(options.get("weekly_context", 0)))
    built = create_model(model, shape, **{**config.model_options, **TEST_ONLY.get(model, {})})
    with torch.no_grad():
        forecast = built(make_batch(shape, batch_size=2))["forecast"]
    assert forecast.shape == (2, 6, 1, 8, 4) and torch.isfinite(forecast).all()


def test_recipe_values_and_dataset_overrides():
    assert published_settings("stid", "bikenyc1")["optim"]["optimizer"] == "adam"
    assert published_settings("stvfm", "taxinyc1")["model_options"]["cross_prompt_layers"] == 1  # paper: 1 on the NYC data
    assert published_settings("stvfm", "crowd")["model_options"]["cross_prompt_layers"] == 2
    assert any("Ranger" in line for line in departures("stllm"))
    assert published_settings("ha-week", "bikenyc1") == {}


@pytest.mark.parametrize("dataset, layers", [("crowd", 2), ("cellular.npz", 2), ("taxinyc1", 1), ("bikenyc1", 1),
                                             ("bikenyc1-60d", 1)])
def test_the_paper_recipe_gives_two_cross_prompt_layers_except_on_the_nyc_data(dataset, layers):
    from importlib import resources

    paper = Path(str(resources.files("stvfm.recipes").joinpath("stvfm-paper.yaml")))
    config = resolve_run_config({"dataset": dataset, "out": "o"}, paper)
    assert config.model_options["cross_prompt_layers"] == layers


def test_flags_override_the_recipe_and_the_config_file(tmp_path):
    config_file = tmp_path / "mine.yaml"
    config_file.write_text(yaml.safe_dump({"model": "stid", "batch_size": 16, "optim": {"lr": 0.01}}))
    config = resolve_run_config({"dataset": "bikenyc1", "out": "o", "optim": {"weight_decay": 0.5}}, config_file)
    assert config.batch_size == 16 and config.optim.lr == 0.01  # file over recipe
    assert config.optim.weight_decay == 0.5 and config.optim.schedule == "multistep"  # flag over both, rest kept
    assert resolve_run_config({"model": "stid", "dataset": "d", "out": "o", "batch_size": 4}, config_file).batch_size == 4
    with pytest.raises(ConfigError, match="not 'unist'"):
        resolve_run_config({"model": "unist", "dataset": "d", "out": "o"}, config_file)


@pytest.mark.parametrize(("content", "message"), [
    ("[1, 2]", "expected a mapping"),
    ("model: stid\nlearning_rate: 3", "unknown setting(s) learning_rate"),
    ("optim: {lr: 1, momentum: 2}", "unknown optim setting(s) momentum"),
    ("optim: {schedule: linear}", "optim.schedule: expected one of cosine, multistep, onecycle, constant, got 'linear'"),
    ("model: [", "not valid YAML"),
])
def test_bad_config_file_is_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    code = main(["fit", "--model", "stid", "--dataset", "bikenyc1", "--config", str(path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_a_runs_config_yaml_is_a_config_file_for_the_same_run(tmp_path, capsys):
    city = write_synthetic_city(tmp_path / "city.npz", days=10)
    first = tmp_path / "first"
    code = main(["fit", "--model", "stid", "--dataset", str(city), "--out", str(first), "--max-epochs", "1",
                 "--limit-train-batches", "2", "--batch-size", "16", "--lr", "0.004", "--accelerator", "cpu"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    said = " ".join(printed.out.split())  # as one line, however the terminal wrapped it
    assert "trained: 2 training steps, about 20% of one epoch (epoch cap): not converged;" in said
    assert " min, fp32 on" in said
    again = resolve_run_config({"out": str(tmp_path / "second")}, first / "config.yaml")
    original = RunConfig.from_dict(yaml.safe_load((first / "config.yaml").read_text()))
    assert again.to_dict() | {"out": ""} == original.to_dict() | {"out": ""}
    assert again.optim.lr == 0.004 and again.optim.optimizer == "adam"  # flags and recipe both kept
    code = main(["fit", "--config", str(first / "config.yaml"), "--out", str(tmp_path / "second")])
    assert code == 0, capsys.readouterr().err
    metrics = [json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("first", "second")]
    assert metrics[0]["rmse"] == pytest.approx(metrics[1]["rmse"], rel=1e-5)


def _rates(config: OptimConfig, steps_per_epoch: int, epochs: int) -> list[float]:
    optimizer = build_optimizer([torch.nn.Parameter(torch.zeros(1))], config)
    schedule = build_schedule(optimizer, config, steps_per_epoch, steps_per_epoch * epochs)
    rates = []
    for _ in range(steps_per_epoch * epochs):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return rates


def test_schedules_follow_the_recipe():
    multistep = _rates(OptimConfig(lr=1.0, schedule="multistep", milestones=(1, 3), gamma=0.5), 4, 4)
    assert multistep[:4] == [1.0] * 4 and multistep[4:12] == [0.5] * 8 and multistep[12:] == [0.25] * 4
    onecycle = _rates(OptimConfig(lr=1.0, schedule="onecycle", pct_start=0.25), 4, 4)
    assert onecycle[0] == pytest.approx(1 / 25) and max(onecycle) == pytest.approx(1.0) and onecycle.index(max(onecycle)) == 4
    assert onecycle[-1] < 0.05 and onecycle[4:] == sorted(onecycle[4:], reverse=True)
    constant = _rates(OptimConfig(lr=2.0, schedule="constant", warmup_epochs=0.0), 3, 2)
    assert constant == [2.0] * 6
    cosine = _rates(OptimConfig(lr=1.0, min_lr=0.0, warmup_epochs=1.0), 2, 3)
    assert cosine[:2] == [0.5, 1.0] and cosine[-1] < 0.3 and all(math.isfinite(r) for r in cosine)
    adam = build_optimizer([torch.nn.Parameter(torch.zeros(1))], OptimConfig(optimizer="adam"))
    assert type(adam) is torch.optim.Adam


@pytest.mark.parametrize("model", ["tau", "stvfm", "mim", "ha-week"])
def test_a_printed_recipe_is_a_config_file_for_the_same_run(model, tmp_path):
    saved = tmp_path / "recipe.yaml"
    saved.write_text(recipe(model, "bikenyc1-60d"))
    from_file = resolve_run_config({"out": str(tmp_path / "run")}, saved)
    from_flags = resolve_run_config({"model": model, "dataset": "bikenyc1-60d", "out": str(tmp_path / "run")})
    assert from_file.to_dict() == from_flags.to_dict()
    assert identity(from_file.to_dict()) == identity(from_flags.to_dict())  # one run, one ledger record name


def test_recipe_command_shows_sources_departures_and_unset_options(capsys):
    assert main(["recipe", "stllm", "--dataset", "bikenyc1"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("# ST-LLM") and "# departure:" in printed and "Ranger" in printed
    assert "model: stllm" in printed and "\nout:" not in printed
    assert "# model options left at their defaults" in printed
    assert main(["recipe", "no-such-model", "--dataset", "bikenyc1"]) == 2
    assert "unknown model 'no-such-model'" in capsys.readouterr().err
