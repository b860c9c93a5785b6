"""``stvfm reproduce``: every experiment's plan, quick runs end to end, reuse, failures, paper figures."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from stvfm.cli.main import main
from stvfm.errors import ConfigError
from stvfm.experiments import reproduce as reproduce_module
from stvfm.experiments import schedule
from stvfm.experiments.paper import PAPER, paper_figure, printed_figure
from stvfm.experiments.reproduce import EXPERIMENTS, ReproduceConfig, plan, reproduce, run_key
from stvfm.models.registry import list_models
from stvfm.testing import SMALL_BACKBONE_CONFIGS as SMALL_CONFIGS
from stvfm.testing import SMALL_MODEL_OPTIONS, write_synthetic_city


@pytest.fixture(scope="module")
def small_city(tmp_path_factory):
    """20 days of hourly counts on a 4x4 grid: enough for the models with weekly context."""
    return write_synthetic_city(tmp_path_factory.mktemp("city") / "city.npz", height=4, width=4)


def tiny(run) -> dict:
    """Shrink every learned model so a quick experiment takes seconds."""
    if run.model == "stvfm":
        backbone = run.options.get("backbone", "dinov2-s")
        return {"weights": "random", "backbone_overrides": SMALL_CONFIGS[backbone], "temporal_dim": 16,
                "temporal_heads": 2, "encoder_layers": 1, "decoder_layers": 1}
    if run.model == "stllm":
        return {"weights": "random", "llm_layers": 2, "gpt2_overrides": {"n_embd": 32, "n_layer": 2, "n_head": 2}}
    if run.model == "arima":
        return {"workers": 1}
    return dict(SMALL_MODEL_OPTIONS.get(run.model, {}))


def quick(experiment, dataset, out, settings=None, **overrides) -> ReproduceConfig:
    return ReproduceConfig(experiment=experiment, dataset=str(dataset), out=str(out), quick=True,
                           settings={"batch_size": 16, "progress": False, **(settings or {})}, extra_options=tiny,
                           **overrides)


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_experiment_has_a_plan_with_one_reference():
    for experiment in EXPERIMENTS:
        runs = plan(experiment)
        assert len({run.label for run in runs}) == len(runs)
        assert sum(run.reference for run in runs) == 1
    assert {run.model for run in plan("main")} == {entry.name for entry in list_models()}
    with pytest.raises(ConfigError, match="unknown experiment"):
        plan("everything")


def test_shared_configurations_share_one_folder():
    full = {experiment: next(run for run in plan(experiment) if run.reference) for experiment in EXPERIMENTS}
    assert {run_key(run) for run in full.values()} == {"stvfm"}
    lambdas = [run_key(run) for run in plan("lambda")]
    assert lambdas.count("stvfm") == 1 and "stvfm_flow_weight-0.0" in lambdas
    assert "stvfm_train_backbone-True_weights-random" in [run_key(run) for run in plan("pretraining")]


def test_paper_figures_are_transcribed():
    assert paper_figure("main", "stvfm", "taxinyc1") == (13.79, 4.95)
    assert paper_figure("main", "ha-day", "bikenyc1") == (11.41, 3.43)
    assert paper_figure("ablation", "adapter", "bikenyc1") == (3.36, 1.22)
    assert paper_figure("backbones", "clip-b16", "tdrive") is None  # the paper has no figure there
    assert paper_figure("video", "videomae-s", "taxinyc1") == (16.64, 6.00)
    assert set(PAPER["main"]) == {entry.name for entry in list_models()} - {"last", "ha-week", "linear-ar"}  # ours, not the paper's
    # MAE can never exceed RMSE: the printed MAU BikeNYC cell is a misprint, offered as no figure
    assert printed_figure("main", "mau", "bikenyc1") == (1.28, 22.1) and paper_figure("main", "mau", "bikenyc1") is None


def test_quick_main_runs_every_model_and_writes_the_report(tmp_path, small_city):
    outcomes, paths = reproduce(quick("main", small_city, tmp_path))
    assert {outcome.status for outcome in outcomes} == {"trained"}
    summary = read_csv(paths["summary"])
    assert sorted(row["configuration"] for row in summary) == sorted(run.label for run in plan("main"))
    assert all(float(row["rmse_mean"]) > 0 for row in summary)
    means = [float(row["rmse_mean"]) for row in summary]
    assert means == sorted(means)  # best first
    report = paths["report"].read_text()
    assert "| ST-VFM (DINOv2-S) | DINOv2-S (random-init) | 1/1 |" in report
    assert "quick (smoke run" in report and paths["figure"].stat().st_size > 0
    maps = [path for key, path in paths.items() if key.startswith("maps-")]
    assert len(maps) == 2 and all(path.stat().st_size > 0 and f"]({path.name})" in report for path in maps)
    assert len(read_csv(paths["runs"])) == len(outcomes)


def test_finished_runs_are_reused_and_shared_across_experiments(tmp_path, small_city, monkeypatch):
    reproduce(quick("lambda", small_city, tmp_path))
    trained = []
    real_fit = schedule.fit
    monkeypatch.setattr(schedule, "fit", lambda config, **hooks: trained.append(config.out) or real_fit(config, **hooks))
    outcomes, paths = reproduce(quick("pretraining", small_city, tmp_path))
    assert [outcome.status for outcome in outcomes] == ["reused", "trained", "trained"]
    assert len(trained) == 2
    again, _ = reproduce(quick("pretraining", small_city, tmp_path))
    assert {outcome.status for outcome in again} == {"reused"} and len(trained) == 2
    assert "reference" in paths["report"].read_text()


def test_report_only_trains_nothing_and_lists_what_is_missing(tmp_path, small_city, monkeypatch):
    monkeypatch.setattr(schedule, "fit", lambda config, **hooks: pytest.fail("report-only must not train"))
    outcomes, paths = reproduce(quick("video", small_city, tmp_path, report_only=True))
    assert {outcome.status.split(":")[0] for outcome in outcomes} == {"missing"}
    assert "## Runs not run yet" in paths["report"].read_text()


def test_a_finished_run_with_other_settings_stops_the_command(tmp_path, small_city):
    reproduce(quick("video", small_city, tmp_path, seeds=(0,)))
    with pytest.raises(ConfigError, match="finished with other settings"):
        reproduce(quick("video", small_city, tmp_path, settings={"optim": {"lr": 1e-3}}))


def test_a_record_from_before_a_default_changed_is_read_with_the_former_default(tmp_path, small_city):
    """Records once left defaults out; ST-VFM's calendar_init_std default has changed since (1 -> 0.02)."""
    config = quick("pretraining", small_city, tmp_path, seeds=(0,))
    reproduce(config)
    metrics_path = Path(config.run_config(plan("pretraining")[0], 0).out) / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    assert metrics["settings"]["model_options"]["calendar_init_std"] == 0.02
    metrics["settings"]["model_options"] = tiny(plan("pretraining")[0])  # the old, partial record
    metrics_path.write_text(json.dumps(metrics))
    with pytest.raises(ConfigError, match="finished with other settings \\(model_options\\)"):
        reproduce(config)


def test_set_options_reach_the_models_that_have_them_and_name_their_folders(tmp_path, small_city):
    config = quick("main", small_city, tmp_path, model_options={"calendar_init_std": 1.0})
    changed = {run.model: run.options for run in config.planned_runs() if run.options}
    assert changed == {"stvfm": {"calendar_init_std": 1.0}}
    assert run_key(next(run for run in config.planned_runs() if run.model == "stvfm")) == "stvfm_calendar_init_std-1.0"
    as_int = quick("main", small_city, tmp_path, model_options={"calendar_init_std": 1})
    assert run_key(next(run for run in as_int.planned_runs() if run.model == "stvfm")) == "stvfm_calendar_init_std-1.0"
    with pytest.raises(ConfigError, match="no model of the main experiment has this option"):
        quick("main", small_city, tmp_path, model_options={"no_such_option": 1})
    with pytest.raises(ConfigError, match="the lambda experiment sets it per run"):
        quick("lambda", small_city, tmp_path, model_options={"flow_weight": 2.0})
    assert "--set calendar_init_std=1.0" in reproduce_module.reproduce_command(config)
    outcomes, paths = reproduce(quick("video", small_city, tmp_path, report_only=True, model_options={"dropout": 0.0}))
    assert paths["report"].name == "video-city-dropout-0.0.md" and "dropout = 0.0 for every run" in paths["report"].read_text()


def test_a_failed_run_is_reported_and_the_cli_exits_non_zero(tmp_path, small_city, monkeypatch, capsys):
    def broken(run):
        return {**tiny(run), "no_such_option": 1} if run.label == "SimVP" else tiny(run)

    outcomes, paths = reproduce(ReproduceConfig(experiment="video", dataset=str(small_city), out=str(tmp_path),
                                                quick=True, settings={"batch_size": 16, "progress": False},
                                                extra_options=broken))
    failed = [outcome for outcome in outcomes if outcome.status.startswith("failed")]
    assert [outcome.label for outcome in failed] == ["SimVP"]
    assert "## Failed runs" in paths["report"].read_text()
    assert main(["reproduce", "--experiment", "nothing", "--dataset", str(small_city)]) == 2
    assert "unknown experiment" in capsys.readouterr().err


def test_an_unexpected_error_in_one_fit_fails_that_run_only_and_keeps_its_traceback(tmp_path, small_city, monkeypatch):
    real_fit = schedule.fit

    def crashing(config, **hooks):
        if "simvp" in config.out:
            raise RuntimeError("expected dtype float but got bf16")
        return real_fit(config, **hooks)

    monkeypatch.setattr(schedule, "fit", crashing)
    outcomes, paths = reproduce(quick("video", small_city, tmp_path))
    statuses = {outcome.label: outcome.status for outcome in outcomes}
    assert statuses["SimVP"].startswith("failed: RuntimeError: expected dtype float")
    assert all(status == "trained" for label, status in statuses.items() if label != "SimVP")
    failed = next(outcome for outcome in outcomes if outcome.label == "SimVP")
    assert "RuntimeError" in (failed.folder / "error.txt").read_text()
    assert not (failed.folder / reproduce_module.LOCK_NAME).exists()
    again, _ = reproduce(quick("video", small_city, tmp_path, report_only=True))
    assert next(o.status for o in again if o.label == "SimVP").endswith("expected dtype float but got bf16 (last attempt)")


def test_a_step_budget_is_applied_recorded_and_the_report_can_live_elsewhere(tmp_path, small_city):
    config = quick("pretraining", small_city, tmp_path / "runs", seeds=(0,), report_dir=str(tmp_path / "docs"),
                   settings={"limit_train_batches": 3, "optim": {"warmup_epochs": 0.5}})
    outcomes, paths = reproduce(config)
    settings = outcomes[0].metrics["settings"]
    assert settings["limit_train_batches"] == 3 and settings["optim"]["warmup_epochs"] == 0.5
    assert all(path.parent == tmp_path / "docs" for path in paths.values())
    report = paths["report"].read_text()
    assert "warm-up 0.5 epochs" in report and "3 training batches per epoch" in report
    assert "--limit-train-batches 3 --warmup-epochs 0.5" in report and f"--report-dir {tmp_path / 'docs'}" in report


def test_runs_claimed_by_a_live_process_are_left_to_it_and_dead_claims_are_taken_over(tmp_path, small_city):
    import os
    import socket
    import subprocess
    import sys

    config = quick("video", small_city, tmp_path, seeds=(0,))
    simvp, videomae, dinov2 = (Path(config.run_config(run, 0).out) for run in plan("video"))
    simvp.mkdir(parents=True)
    (simvp / reproduce_module.LOCK_NAME).write_text(f"{socket.gethostname()}:{os.getpid()}")  # alive: this test
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    videomae.mkdir(parents=True)
    (videomae / reproduce_module.LOCK_NAME).write_text(f"{socket.gethostname()}:{finished.stdout.strip()}")
    outcomes, paths = reproduce(config)
    assert [outcome.status.split(":")[0] for outcome in outcomes] == ["busy", "trained", "trained"]
    assert "## Runs still being trained elsewhere" in paths["report"].read_text()
    assert (simvp / reproduce_module.LOCK_NAME).exists()
    assert not (videomae / reproduce_module.LOCK_NAME).exists() and not (dinov2 / reproduce_module.LOCK_NAME).exists()


def test_quick_efficiency_gives_times_as_ratios_to_unist(tmp_path, small_city):
    outcomes, paths = reproduce(quick("efficiency", small_city, tmp_path))
    assert [outcome.label for outcome in outcomes] == ["UniST", "#4 adapter", "full"]
    assert {outcome.status for outcome in outcomes} == {"trained"}
    report = paths["report"].read_text()
    table = report[report.index("## Training and inference time"):].splitlines()
    unist = next(line for line in table if line.startswith("| UniST"))
    cells = [cell.strip() for cell in unist.strip("|").split("|")]
    assert cells[2] == cells[4] == "1.00" and float(cells[1]) > 0 and float(cells[3]) > 0
    full = [cell.strip() for cell in next(line for line in table if line.startswith("| full")).strip("|").split("|")]
    assert float(full[2]) > 0 and full[5] == "1.94" and full[6] == "1.76"  # the paper's 2.06 / 1.06 and 0.0745 / 0.0423
