"""The results ledger: records from fits, their schema, tables rebuilt from records alone, selection and fan-out."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch

from stvfm.cli.main import main
from stvfm.errors import DataError
from stvfm.experiments.ledger_report import report
from stvfm.experiments.reproduce import ReproduceConfig, reproduce
from stvfm.ledger import REQUIRED, add, read_records
from stvfm.reports.tables import budget_words
from stvfm.testing import write_synthetic_city
from stvfm.training.stopping import STOP_REASONS, stop_reason


@pytest.fixture(scope="module")
def small_city(tmp_path_factory):
    return write_synthetic_city(tmp_path_factory.mktemp("city") / "city.npz", days=10, height=4, width=4)


@pytest.fixture(scope="module")
def ledger_with_runs(tmp_path_factory, small_city):
    """Two seeds of STID and one of ha-week, each recorded by the fit itself (STVFM_LEDGER)."""
    root = tmp_path_factory.mktemp("work")
    ledger = root / "ledger"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STVFM_LEDGER", str(ledger))
        for seed in (0, 1):
            assert main(["fit", "-m", "stid", "-d", str(small_city), "-o", str(root / f"stid-{seed}"), "--seed", str(seed),
                         "--max-epochs", "2", "--limit-train-batches", "2", "--batch-size", "16", "--accelerator", "cpu"]) == 0
        assert main(["evaluate", "-m", "ha-week", "-d", str(small_city), "-o", str(root / "ha-week")]) == 0
    return root, ledger


def test_every_fit_leaves_a_record_with_the_schema(ledger_with_runs):
    _, ledger = ledger_with_runs
    records = read_records([ledger])
    assert len(records) == 3 and all(set(REQUIRED) <= set(record) for record in records)
    stid = next(record for record in records if record["model"] == "stid")
    assert stid["stop_reason"] == "epoch cap" and stid["epochs"] == 2
    assert stid["train_steps"] == 4 and stid["batches_per_epoch"] == 10  # 2 of each epoch's 10 batches, twice
    # all its training is less than one epoch's worth of batches: said as such
    assert budget_words(stid) == "4 training steps, about 40% of one epoch (epoch cap): not converged"
    assert [point["epoch"] for point in stid["val_curve"]] == [0, 1] and "val/mse_st" in stid["val_curve"][0]
    assert all(point["time/epoch_seconds"] > 0 for point in stid["val_curve"])  # each epoch's wall time
    assert stid["period"] == {"start": "2024-01-01T00:00", "end": "2024-01-10T23:00", "steps": 240}  # what was read
    assert stid["settings"]["optim"]["optimizer"] == "adam"  # the recipe, resolved
    assert stid["selection_metric"] == "val/mse_st" and stid["threads"] >= 1 and stid["machine"]["cores"]
    assert stid["machine"]["load_15min"] >= 0  # readers can tell a run that shared its cores
    assert "checkpoint" not in stid and not any(path.suffix != ".json" for path in ledger.rglob("*") if path.is_file())
    classical = next(record for record in records if record["model"] == "ha-week")
    assert classical["stop_reason"] == "not trained" and budget_words(classical) == "closed form"


def test_a_report_is_rebuilt_from_ledger_records_alone(ledger_with_runs, small_city, tmp_path, capsys):
    _, ledger = ledger_with_runs
    alone = tmp_path / "fresh-clone"
    shutil.copytree(ledger, alone / "ledger")  # no run folders anywhere near
    text = report([alone / "ledger"], small_city.stem, 0, out=alone / "table.md")
    table = text[:text.index("at each forecast step")]
    lines = [line for line in table.splitlines() if line.startswith("| stid") or line.startswith("| ha-week")]
    assert len(lines) == 2  # two seeds of one configuration make one row
    stid = next(line for line in lines if line.startswith("| stid"))
    assert "±" in stid and "0, 1" in stid and "epoch cap" in stid
    assert torch.backends.cpu.get_cpu_capability() in stid  # the host's vector units beside each budget
    ha_week = next(line for line in lines if line.startswith("| ha-week"))
    assert "| - | closed form |" in ha_week  # no seeds listed for a closed form
    assert (alone / "table.md").read_text() == text
    assert main(["ledger", "report", "-d", small_city.stem, "--ledger", str(alone / "ledger")]) == 0
    assert "No stvfm record for this dataset" in capsys.readouterr().out
    assert main(["ledger", "report", "-d", small_city.stem, "--ledger", str(alone / "ledger"), "--versus", "stid"]) == 0
    assert "## stid against each row" in capsys.readouterr().out
    assert main(["ledger", "report", "-d", small_city.stem, "--ledger", str(alone / "ledger"), "--versus", "stdi"]) == 2
    assert "unknown model 'stdi'" in capsys.readouterr().err


def test_ledger_best_is_a_terminal_table_of_each_models_best_row(ledger_with_runs, small_city, capsys):
    from stvfm.experiments.ledger_report import best

    _, ledger = ledger_with_runs
    rows = best([ledger], small_city.stem, 0)
    stid = next(row for row in rows if row.model == "stid")
    assert len(stid.records) == 2 and stid.epochs_and_minutes[0] == "2, 2" and stid.stopped_by == "epoch cap"
    assert rows == sorted(rows, key=lambda row: row.stat("rmse")[0])  # best first
    assert main(["ledger", "best", "-d", small_city.stem, "--ledger", str(ledger)]) == 0
    out = capsys.readouterr().out
    assert "|" not in out and "---" not in out  # a drawn table, not Markdown
    table_rows = {line.split()[1]: line for line in out.splitlines() if line.startswith("│")}
    assert set(table_rows) == {"stid", "ha-week"}
    assert "closed form" in table_rows["ha-week"] and "epoch cap" in table_rows["stid"] and "±" in table_rows["stid"]
    with pytest.raises(DataError, match="no ledger records"):
        best([ledger], "elsewhere", 0)


def test_ledger_add_from_run_folders_and_bad_records(ledger_with_runs, tmp_path, capsys):
    root, _ = ledger_with_runs
    written = add([root / "stid-0"], tmp_path / "elsewhere")
    assert written[0].parent.name == "city" and json.loads(written[0].read_text())["seed"] == 0
    imported = add([written[0]], tmp_path / "another-machine")  # a record file gathered elsewhere
    assert imported[0].name == written[0].name and json.loads(imported[0].read_text()) == json.loads(written[0].read_text())
    with pytest.raises(DataError, match="no metrics.json"):
        add([tmp_path], tmp_path / "x")
    bad = tmp_path / "bad" / "record.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps({"model": "stid"}))
    code = main(["ledger", "report", "-d", "city", "--ledger", str(bad.parent)])
    err = capsys.readouterr().err
    assert code == 2 and "record.json" in err and "not a ledger record" in err and len(err.strip().splitlines()) == 1


def test_a_record_keeps_each_test_windows_error_and_an_older_run_gets_them_from_its_forecasts(ledger_with_runs, tmp_path):
    root, ledger = ledger_with_runs
    for record in read_records([ledger]):  # the fit and the closed-form evaluation both keep them
        windows = record["per_window"]
        counts = windows["n_points"]
        assert len(windows["mse"]) == len(counts) == record["n_windows"] and sum(counts) == record["n_points"]
        pooled = sum(mse * count for mse, count in zip(windows["mse"], counts, strict=True)) / sum(counts)
        assert pooled == pytest.approx(record["rmse"] ** 2, rel=1e-5)
        assert sum(mae * count for mae, count in zip(windows["mae"], counts, strict=True)) / sum(counts) == pytest.approx(
            record["mae"], rel=1e-5)
        assert windows["interval_minutes"] == 60 and windows["first_step_time"] >= record["period"]["start"]
    older = shutil.copytree(root / "stid-0", tmp_path / "before-per-window")
    metrics = json.loads((older / "metrics.json").read_text())
    kept = metrics.pop("per_window")
    (older / "metrics.json").write_text(json.dumps(metrics))
    rebuilt = json.loads(add([older], tmp_path / "ledger")[0].read_text())
    assert rebuilt["per_window"]["first_step_time"] == kept["first_step_time"]
    assert rebuilt["per_window"]["interval_minutes"] == 60 and rebuilt["per_window"]["n_points"] == kept["n_points"]
    np.testing.assert_allclose(rebuilt["per_window"]["mse"], kept["mse"], rtol=1e-6)
    broken = dict(rebuilt, per_window={"first_step_time": 3, "mse": "x"})
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "r.json").write_text(json.dumps(broken))
    with pytest.raises(DataError, match="per_window"):
        read_records([tmp_path / "bad"])


def test_a_setting_added_later_with_its_default_keeps_a_records_name(ledger_with_runs):
    from stvfm.ledger import record_name

    _, ledger = ledger_with_runs
    record = next(record for record in read_records([ledger]) if record["model"] == "stid")
    older = json.loads(json.dumps(record))
    del older["settings"]["optim"]["ema_decay"], older["settings"]["model_options"]["dropout"]  # before they existed
    assert record_name(older) == record_name(record)
    older["settings"]["optim"]["lr"] *= 2
    assert record_name(older) != record_name(record)


def test_a_model_option_added_later_leaves_the_names_of_records_written_before_it():
    from stvfm.ledger import identity, result_settings

    settings = {"model": "stvfm", "dataset": "bikenyc1-60d", "seed": 0, "model_options": {"variant": "full"}}
    assert "highway" not in result_settings(settings)["model_options"]  # at its default: named as before it existed
    assert identity({**settings, "model_options": {"variant": "full", "highway": False}}) == identity(settings)
    on = {**settings, "model_options": {"variant": "full", "highway": True}}
    assert result_settings(on)["model_options"]["highway"] is True and identity(on) != identity(settings)


def test_stop_reasons():
    assert stop_reason(10, 10, 5.0, None, early_stopped=False) == "epoch cap"
    assert stop_reason(3, 10, 599.0, 10, early_stopped=False) == "time cap"
    assert stop_reason(7, 10, 100.0, 10, early_stopped=True) == "early stop"
    assert stop_reason(0, 10, 0.0, None, early_stopped=False) == "not trained"
    assert set(STOP_REASONS) == {"early stop", "epoch cap", "time cap", "not trained"}
    # the timer's word wins: stopped by time inside the only epoch is a time cap
    assert stop_reason(1, 1, 900.0, 10, early_stopped=False, timed_out=True) == "time cap"
    assert stop_reason(1, 1, 900.0, 10, early_stopped=False, timed_out=False) == "epoch cap"


def test_a_time_cap_inside_the_last_epoch_is_recorded_as_a_time_cap(tmp_path, small_city):
    from stvfm.training.config import RunConfig
    from stvfm.training.runner import fit

    run = RunConfig(model="stid", dataset=str(small_city), out=str(tmp_path / "run"), max_epochs=1, batch_size=2,
                    max_minutes=0.0002, progress=False, accelerator="cpu", precision="32")
    assert fit(run)["stop_reason"] == "time cap"  # the timer stopped it after a batch of its one epoch


def test_selection_watches_the_forecast_error_not_the_flow_term(tmp_path, small_city):
    """ST-VFM full with a huge flow weight: its total loss and its forecast MSE disagree on the best epoch."""
    out = tmp_path / "stvfm"
    assert main(["fit", "-m", "stvfm", "-d", str(small_city), "-o", str(out), "--max-epochs", "4",
                 "--limit-train-batches", "3", "--batch-size", "16", "--accelerator", "cpu", "--precision", "32",
                 "--set", "backbone=tiny", "--set", "weights=random", "--set", "temporal_dim=16",
                 "--set", "temporal_heads=2", "--set", "flow_weight=1000", "--lr", "0.01", "--warmup-epochs", "0"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    with open(out / "logs" / "metrics.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("val/mse_st")]
    forecast = [float(row["val/mse_st"]) for row in rows]
    assert metrics["selection_metric"] == "val/mse_st"
    assert metrics["best_val_score"] == pytest.approx(min(forecast), rel=1e-6)


def test_fan_out_through_submitit_local_executor(tmp_path, small_city):
    pytest.importorskip("submitit")
    config = ReproduceConfig(experiment="pretraining", dataset=str(small_city), out=str(tmp_path), quick=True,
                             settings={"batch_size": 16, "progress": False, "precision": "32"}, recipes=True,
                             executor="submitit-local",
                             extra_options=lambda run: {"weights": "random", "backbone": "tiny", "temporal_dim": 16,
                                                        "temporal_heads": 2, "encoder_layers": 1, "decoder_layers": 1})
    outcomes, paths = reproduce(config)
    assert {outcome.status for outcome in outcomes} == {"trained"}, [outcome.status for outcome in outcomes]
    assert all((outcome.folder / "metrics.json").is_file() for outcome in outcomes)
    assert len(outcomes) == 3 and any((tmp_path / "submitit").iterdir())  # the jobs ran through the engine, with its logs
    again, _ = reproduce(config)  # a second pass reuses every finished run, submitting nothing
    assert {outcome.status for outcome in again} == {"reused"}
    assert paths["report"].is_file()


def test_the_validation_trend_is_the_lowest_seeds_whatever_order_records_came_in():
    from stvfm.experiments.ledger_report import LedgerRow

    def record(seed, curve):
        return {"model": "stid", "stop_reason": "time cap", "seed": seed,
                "val_curve": [{"epoch": epoch, "val/rmse": value} for epoch, value in enumerate(curve)]}

    row = LedgerRow("stid", [record(1, [9.0, 8.0]), record(0, [7.0, 6.5, 6.4, 6.3])])  # seed 0 re-recorded last
    assert row.trend == "6.50 > 6.40 > 6.30"


def test_gaps_are_judged_against_whichever_seed_spread_is_known():
    from stvfm.experiments.ledger_report import LedgerRow, _verdict

    def row(label, rmses, stop="time cap"):
        return LedgerRow(label, [{"model": label, "stop_reason": stop, "rmse": value, "seed": seed}
                                 for seed, value in enumerate(rmses)])

    closed = row("ha-week", [10.0], stop="not trained")
    assert _verdict(row("stid", [10.0, 10.6, 10.3]), closed) == "within the seed spread"  # gap 0.3, std 0.3
    assert _verdict(row("stid", [11.0, 11.1, 11.2]), closed) == "beyond the seed spread"
    assert _verdict(row("tau", [10.1]), closed) == "one seed: spread unknown"
    # a closed-form row has no seeds: behind a one-seed learned best, no verdict speaks of its spread
    assert _verdict(closed, row("tau", [9.1])) == "closed form; the best row has one seed: gap not judged"
    assert _verdict(closed, row("stid", [9.0, 9.5, 10.0])) == "within the best row's seed spread"
    assert _verdict(row("tau", [10.1]), row("stvfm", [9.0, 9.5, 10.0])) == "within the seed spread"
    assert _verdict(row("ha-day", [12.0], stop="not trained"), closed) == "neither learned"


def test_the_report_ends_with_the_methods_verdict_against_every_row():
    from stvfm.experiments.ledger_report import LedgerRow, render

    def row(label, rmses, stop="epoch cap"):
        return LedgerRow(label, [{"model": label, "stop_reason": stop, "rmse": value, "mae": value / 2, "seed": seed,
                                  "epochs": 10} for seed, value in enumerate(rmses)])

    rows = [row("tau", [6.7]), row("stid", [6.8, 6.85, 6.9]), row("stvfm", [7.0, 7.05, 7.1]),
            row("ha-week", [7.1], stop="not trained"), row("acfm", [9.0])]
    text = render(rows, "bikenyc1", 0, ["ledger"])
    verdicts = text[text.index("## stvfm against each row"):]
    assert "| tau | -0.350: behind (beyond 0.100, twice stvfm's seed spread) |" in verdicts  # one tau seed: stvfm's spread
    assert "| stid | -0.200: behind (beyond 0.100, twice the wider seed spread) |" in verdicts
    assert "| ha-week | +0.050: level (within 0.100, twice stvfm's seed spread) |" in verdicts
    assert "| acfm | +1.950: ahead (beyond 0.100, twice stvfm's seed spread) |" in verdicts
    assert "| stvfm |" not in verdicts
    alone = render([row("tau", [6.7]), row("stvfm", [7.0])], "bikenyc1", 0, ["ledger"])
    assert "| tau | -0.300: no seed spread known, not judged | -0.150: no seed spread known, not judged |" in alone
    assert "No unist record for this dataset and channel" in render(rows, "bikenyc1", 0, ["ledger"], versus="unist")
    assert "## tau against each row" in render(rows, "bikenyc1", 0, ["ledger"], versus="tau")


def test_an_ablation_row_stands_beside_the_papers_ablation_figure_not_the_full_models():
    from stvfm.experiments.ledger_report import LedgerRow, _paper_text

    def row(variant):
        return LedgerRow(f"stvfm ({variant})", [{"model": "stvfm", "variant": variant, "stop_reason": "epoch cap",
                                                 "rmse": 7.0, "mae": 3.0, "seed": 0}])

    assert _paper_text(row("full"), "bikenyc1") == "3.38 / 1.2"
    assert _paper_text(row("adapter"), "bikenyc1") == "3.36 / 1.22"  # Table 3, #4
    assert _paper_text(row("simple"), "bikenyc1") == "8.49 / 2.65"  # Table 3, #1


def test_the_report_tabulates_each_forecast_step_mean_over_seeds():
    from stvfm.experiments.ledger_report import LedgerRow, render

    def record(model, seed, steps, stop="epoch cap"):
        return {"model": model, "stop_reason": stop, "rmse": sum(steps) / len(steps), "mae": 1.0, "seed": seed,
                "epochs": 10, "per_horizon": {"rmse": steps, "mae": steps}}

    rows = [LedgerRow("tau", [record("tau", 0, [4.0, 6.0]), record("tau", 1, [5.0, 7.0])]),
            LedgerRow("ha-week", [record("ha-week", 0, [7.0, 5.0], stop="not trained")]),
            LedgerRow("old", [{"model": "old", "stop_reason": "time cap", "rmse": 9.0, "mae": 4.0, "seed": 0, "epochs": 1}])]
    text = render(rows, "bikenyc1", 0, ["ledger"])
    assert "| model | seeds | step 1 | step 2 |" in text
    assert "| tau | 2 | **4.50** | 6.50 |" in text  # the mean over both seeds, the lowest of step 1
    assert "| ha-week | - | 7.00 | **5.00** |" in text
    assert "| old | 1 |" not in text  # a record written before per-step errors: no row, no invented figure


def test_compare_puts_ledger_records_beside_run_folders(ledger_with_runs, tmp_path, capsys):
    from stvfm.reports.tables import comparison_rows

    root, ledger = ledger_with_runs
    copied = tmp_path / "ledger"
    shutil.copytree(ledger, copied)
    one_record = next(path for path in copied.rglob("ha-week*.json"))
    rows = comparison_rows([copied, root / "stid-0"])  # three records + one run folder
    assert sorted(row[0] for row in rows) == ["ha-week", "stid", "stid", "stid"]
    assert [row[0] for row in comparison_rows([one_record])] == ["ha-week"]
    assert main(["compare", str(copied), str(root / "stid-0")]) == 0
    # the best row tested against each, window by window; a run folder from before per-window errors were
    # kept gets them from its saved forecasts, a record without them says so
    older = shutil.copytree(root / "stid-1", tmp_path / "older-run")
    metrics = json.loads((older / "metrics.json").read_text())
    del metrics["per_window"]
    (older / "metrics.json").write_text(json.dumps(metrics))
    bare = json.loads(one_record.read_text())
    del bare["per_window"]
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / one_record.name).write_text(json.dumps(bare))
    rows = comparison_rows([root / "stid-0", older, root / "ha-week", tmp_path / "bare" / one_record.name])
    cells = [row[-1] for row in rows]
    assert cells[0] == "best" and cells.count("per-window errors not recorded") == 1
    assert sum(": " in cell and "(p " in cell for cell in cells) == 2
    metrics["per_window"] = {"first_step_time": "2024-01-09T00:00:00", "mse": [1.0]}  # hand-edited, truncated
    (older / "metrics.json").write_text(json.dumps(metrics))
    assert main(["compare", str(root / "stid-0"), str(older)]) == 2
    assert "older-run/metrics.json: per_window is not {first_step_time" in capsys.readouterr().err


def test_a_reproduce_report_takes_records_of_the_same_run_and_budget_from_the_ledger(ledger_with_runs, small_city,
                                                                                   tmp_path):
    _, ledger = ledger_with_runs
    alone = tmp_path / "fresh-clone"
    shutil.copytree(ledger, alone / "ledger")  # no run folders: a clone of the repository
    settings = {"max_epochs": 2, "limit_train_batches": 2, "batch_size": 16, "progress": False}
    config = dict(experiment="main", dataset=str(small_city), out=str(alone / "runs"), recipes=True, seeds=(0, 1),
                  report_only=True)
    outcomes, paths = reproduce(ReproduceConfig(**config, settings=settings, ledger=str(alone / "ledger")))
    from_ledger = {(outcome.label, outcome.seed) for outcome in outcomes if outcome.status == "from ledger"}
    assert from_ledger == {("stid", 0), ("stid", 1), ("ha-week", 0)}
    stid = next(outcome for outcome in outcomes if outcome.label == "stid" and outcome.seed == 1)
    assert stid.folder.parent == alone / "ledger" / small_city.stem and stid.metrics["seed"] == 1
    report_text = paths["report"].read_text()
    assert report_text.startswith("# main on city (channel 0, 2024-01-01 00:00 to 2024-01-10 23:00)")
    assert "| stid | - | 2/2 |" in report_text and "every model at its own recipe" in report_text
    assert "--ledger" in report_text and "horizons.png" in report_text  # the figure reads the records too
    # another budget is another run: its records never fill this table
    outcomes, _ = reproduce(ReproduceConfig(**config, settings=settings | {"max_epochs": 3}, ledger=str(alone / "ledger")))
    assert {outcome.label for outcome in outcomes if outcome.status == "from ledger"} == {"ha-week"}


def test_crowd_and_cellular_go_on_the_papers_thousand_scale_in_the_direction_the_data_says():
    from stvfm.experiments.ledger_report import LedgerRow, render
    from stvfm.experiments.paper import paper_scale

    assert paper_scale("crowd", 0.2) == 1e3 and paper_scale("cellular", 5000.0) == 1e-3
    assert paper_scale("bikenyc1", 0.2) == 1.0 and paper_scale("crowd", None) == 1.0
    record = {"model": "stid", "stop_reason": "early stop", "rmse": 0.004, "mae": 0.002, "seed": 0, "epochs": 3,
              "scaling": {"minimum": 0.0, "maximum": 0.5}}
    text = render([LedgerRow("stid", [record])], "crowd", 0, ["ledger"])
    assert "| stid | 4.000 | 2.000 | 3.85 / 1.63 |" in text
    assert "x 1000" not in render([LedgerRow("stid", [record])], "bikenyc1", 0, ["ledger"])


def test_seeds_at_different_time_caps_are_separate_rows_named_by_their_cap():
    from stvfm.experiments.ledger_report import ledger_rows

    def record(seed, cap, rmse, stop="time cap"):
        settings = {"model": "stid", "dataset": "bikenyc1", "out": f"runs/{seed}-{cap}", "seed": seed, "max_minutes": cap}
        return {"model": "stid", "dataset": "bikenyc1", "channel": 0, "settings": settings, "stop_reason": stop,
                "seed": seed, "rmse": rmse, "mae": rmse / 2, "recorded_at": f"2026-12-0{seed + 1}"}

    rows = ledger_rows([record(0, 30.0, 6.0, "early stop"), record(1, 8.0, 7.0), record(2, 8.0, 7.2)], "bikenyc1")
    assert [(row.label, row.seeds) for row in rows] == [("stid [no time cap reached]", [0]), ("stid [cap 8 min]", [1, 2])]
    assert rows[1].stat("rmse")[0] == pytest.approx(7.1)  # the 30-minute seed never averages with the 8-minute ones
    alone = ledger_rows([record(1, 8.0, 7.0), record(2, 8.0, 7.2)], "bikenyc1")
    assert [row.label for row in alone] == ["stid"]  # one budget: no label needed
    from stvfm.ledger import record_name

    assert record_name(record(0, 8.0, 7.0)) != record_name(record(0, 30.0, 6.0))  # both results are kept


def test_seeds_that_no_time_cap_stopped_share_a_row_whatever_sitting_cap_and_checksum_they_recorded():
    """Seed 0 resumed under 120-minute sittings before records held the data digest, seeds 1-2 under
    170-minute sittings with it: all ended at their last epoch or by early stopping, so one result."""
    from stvfm.experiments.ledger_report import ledger_rows

    def record(seed, cap, stop, digest=None):
        settings = {"model": "stid", "dataset": "bikenyc1", "out": f"runs/{seed}", "seed": seed, "max_minutes": cap}
        settings |= {"data_sha256": digest} if digest else {}
        return {"model": "stid", "dataset": "bikenyc1", "channel": 0, "settings": settings, "stop_reason": stop,
                "seed": seed, "rmse": 6.8 + seed / 100, "mae": 3.2, "recorded_at": f"2026-12-0{seed + 1}", "epochs": 90}

    finished = [record(0, 120.0, "epoch cap"), record(1, 170.0, "early stop", "ab" * 32),
                record(2, 170.0, "epoch cap", "ab" * 32)]
    # seed 0 was resumed: two sittings of 50 and 70 minutes, its budget the sum of both
    finished[0] |= {"epochs": 100, "threads": 1, "train_seconds": 4200.0, "total_train_seconds": 7200.0,
                    "sittings": [{"train_seconds": 3000.0}, {"train_seconds": 4200.0}]}
    rows = ledger_rows(finished, "bikenyc1")
    assert [(row.label, row.seeds) for row in rows] == [("stid", [0, 1, 2])]
    assert rows[0].budget.startswith("100 ep, 120 min over 2 sittings x 1 thr, epoch cap")
    assert rows[0].stat("rmse") == pytest.approx((6.81, 0.01))
    # a seed the 170-minute cap stopped is another result: its own row, named by its cap
    rows = ledger_rows([*finished[:2], record(2, 170.0, "time cap", "ab" * 32)], "bikenyc1")
    assert sorted((row.label, tuple(row.seeds)) for row in rows) == [("stid [cap 170 min]", (2,)),
                                                                      ("stid [no time cap reached]", (0, 1))]


def test_a_fine_tuned_row_names_the_run_it_started_from():
    from stvfm.experiments.ledger_report import ledger_rows

    def record(seed, init_from=None):
        settings = {"model": "unist", "dataset": "bikenyc1", "out": f"runs/{seed}", "seed": seed, "init_from": init_from}
        return {"model": "unist", "dataset": "bikenyc1", "channel": 0, "settings": settings, "stop_reason": "early stop",
                "seed": seed, "rmse": 6.0 + seed, "mae": 3.0, "recorded_at": f"2026-12-0{seed + 1}"}

    start = "runs/relay/pretrain/unist-bikenyc1-60d+taxinyc1-seed0/checkpoints/best.ckpt"
    rows = ledger_rows([record(0), record(1, start)], "bikenyc1")
    assert [row.label for row in rows] == ["unist", "unist (fine-tuned from unist-bikenyc1-60d+taxinyc1-seed0)"]
