"""``stvfm search``: trials are fit runs scored on validation, the study resumes from its SQLite file."""

from __future__ import annotations

import json

import pytest

import stvfm.experiments.search as search_module
from stvfm.cli.main import main
from stvfm.errors import ConfigError
from stvfm.experiments.search import SearchConfig, search
from stvfm.testing import write_synthetic_city
from stvfm.training.config import native_precision
from stvfm.training.recipes import resolve_run_config

TINY = {"backbone": "tiny", "weights": "random", "temporal_dim": 16, "temporal_heads": 2, "encoder_layers": 1,
        "decoder_layers": 1}


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    return write_synthetic_city(tmp_path_factory.mktemp("city") / "city.npz", days=6, height=4, width=4)


def config(city, tmp_path, trials: int) -> SearchConfig:
    return SearchConfig(dataset=str(city), storage=f"sqlite:///{tmp_path / 'study.db'}", out=str(tmp_path / "search"),
                        trials=trials, batch_sizes=(4, 8), sampler_seed=0,
                        settings={"model_options": TINY, "max_epochs": 2, "limit_train_batches": 2, "accelerator": "cpu"})


def test_a_two_trial_search_resumes_from_its_sqlite_file(city, tmp_path):
    import optuna

    first = search(config(city, tmp_path, trials=1))
    assert [trial["state"] for trial in first["trials"]] == ["COMPLETE"]
    kept = (tmp_path / "search" / "trials" / "trial-0" / "metrics.json").stat().st_mtime_ns
    second = search(config(city, tmp_path, trials=2))  # a new process would do the same: all state is in study.db
    assert [trial["number"] for trial in second["trials"]] == [0, 1]
    assert (tmp_path / "search" / "trials" / "trial-0" / "metrics.json").stat().st_mtime_ns == kept  # not re-run
    assert search(config(city, tmp_path, trials=2))["trials"] == second["trials"]  # target reached: nothing runs
    for trial in second["trials"]:
        assert trial["state"] == "COMPLETE" and set(trial["params"]) == {
            "batch_size", "lr", "weight_decay", "warmup_fraction", "dropout", "flow_weight", "ema_decay"}
        assert trial["value"] == pytest.approx(trial["validation"]["val_mse_st"])
        assert trial["validation"]["val_rmse"] > 0 and trial["epochs"] == 2
    # the pruning callback reported every epoch's validation figure to the study
    study = optuna.load_study(study_name="recipe", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert all(len(trial.intermediate_values) == 2 for trial in study.trials)
    best = min(second["trials"], key=lambda trial: trial["value"])
    assert second["best"]["number"] == best["number"]
    saved = json.loads((tmp_path / "search" / "search-summary.json").read_text())
    assert saved["budget_per_trial"]["max_epochs"] == 2
    assert all(set(trial["validation"]) == {"val_mse_st", "val_rmse", "val_mae", "epoch"} for trial in saved["trials"])
    assert f"Best: trial {best['number']}" in (tmp_path / "search" / "search-summary.md").read_text()


def test_options_fixed_by_set_are_not_searched(tmp_path):
    fixed = SearchConfig(dataset="bikenyc1", storage="sqlite:///x.db", out=str(tmp_path),
                         settings={"model_options": {"dropout": 0.0}})
    assert fixed.searched_options == ("flow_weight",)
    assert SearchConfig(dataset="bikenyc1", storage="sqlite:///x.db", out=str(tmp_path), model="unist").searched_options == ("dropout",)
    with pytest.raises(ConfigError, match="storage"):
        SearchConfig(dataset="bikenyc1", storage="study.db", out=str(tmp_path))


def test_cli_search_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["search", "--dataset", "bikenyc1", "--storage", "study.db", "--out", str(tmp_path)]) == 2
    assert main(["search", "--dataset", "bikenyc1", "--batch-sizes", "8,x", "--out", str(tmp_path)]) == 2
    assert "--batch-sizes" in capsys.readouterr().err


def test_a_trial_starts_from_the_models_recipe(city, tmp_path):
    import optuna

    study = optuna.create_study()
    trial = study.ask()
    run = search_module.trial_run_config(trial, config(city, tmp_path, trials=1))
    recipe = resolve_run_config({"model": "stvfm", "dataset": str(city), "out": str(tmp_path)})
    assert run.precision == recipe.precision == native_precision()  # not given: the recipe's ("auto")
    assert run.optim.schedule == recipe.optim.schedule and run.optim.min_lr == recipe.optim.min_lr
    assert run.optim.lr == trial.params["lr"] and run.optim.ema_decay == trial.params["ema_decay"]
    assert run.batch_size == trial.params["batch_size"] and run.max_epochs == 2
    assert run.model_options["temporal_dim"] == TINY["temporal_dim"]
