"""Accuracy against compute from ledger records alone, and the period every record and report names."""

from __future__ import annotations

import json

import pytest

from stvfm.cli.main import main
from stvfm.experiments.compute_report import ComputeRow, compute, run_compute
from stvfm.experiments.ledger_report import ledger_rows, render
from stvfm.ledger import record_period
from stvfm.training.flops import EpochFlops, WindowFlops
from stvfm.training.stopping import EPOCH_SECONDS


def _record(model="stid", seed=0, rmse=6.0, curve=(9.0, 7.0, 6.5, 6.4), stop="epoch cap", train_seconds=100.0,
            threads=2, capability="AVX512", dataset="bikenyc1", period=None, max_minutes=None, **extra):
    settings = {"model": model, "dataset": dataset, "out": f"runs/{model}-{seed}", "seed": seed,
                "max_minutes": max_minutes}
    record = {"schema": 1, "model": model, "dataset": dataset, "channel": 0, "split": "test", "rmse": rmse,
              "mae": rmse / 2, "per_horizon": {"mae": [rmse / 2], "rmse": [rmse]}, "n_windows": 10, "seed": seed, "settings": settings,
              "stop_reason": stop, "epochs": len(curve), "train_seconds": train_seconds, "threads": threads,
              "machine": {"cores": 4, "cpu_capability": capability}, "recorded_at": f"2026-12-0{seed + 1}",
              "val_curve": [{"epoch": epoch, "val/rmse": value} for epoch, value in enumerate(curve)], **extra}
    if period:
        record["period"] = {"start": period[0], "end": period[1]}
    return record


def test_epochs_are_placed_on_core_seconds_from_the_most_precise_timing_a_record_holds():
    old = run_compute(_record(train_seconds=100.0, threads=2))  # one total: spread evenly
    assert old.timing == "total" and [v.core_seconds for v in old.validations] == [50.0, 100.0, 150.0, 200.0]

    logged = _record(curve=(9.0, 7.0, 6.5), threads=1)
    for point, seconds in zip(logged["val_curve"], (10.0, 20.0, 5.0), strict=True):
        point[EPOCH_SECONDS] = seconds
    assert [v.core_seconds for v in run_compute(logged).validations] == [10.0, 30.0, 35.0]

    # two sittings on two hosts: 60 s x 1 thread for epochs 1-2 on AVX2, then 30 s x 2 threads for epoch 3 on AVX512
    sittings = [{"train_seconds": 60.0, "epochs_reached": 2, "threads": 1, "cpu_capability": "avx2"},
                {"train_seconds": 30.0, "epochs_reached": 3, "threads": 2, "cpu_capability": "avx512"}]
    resumed = run_compute(_record(curve=(9.0, 7.0, 6.5), sittings=sittings, capability=None))
    assert resumed.timing == "sittings"
    assert [(v.core_seconds, v.vector_units) for v in resumed.validations] == [
        (30.0, "AVX2"), (60.0, "AVX2"), (120.0, "AVX512")]

    unknown = run_compute(_record(threads=None, capability=None))  # no thread count: the machine's 4 cores
    assert not unknown.threads_recorded and unknown.validations[-1].core_seconds == 400.0
    assert unknown.vector_units == {"not recorded"}


def test_work_is_placed_by_counted_flops_and_a_log_missing_epochs_by_its_sittings():
    epoch = EpochFlops(WindowFlops(train=3, val=1), train_windows=100, val_windows=20)  # 320 FLOPs an epoch
    run = run_compute(_record(curve=(9.0, 7.0, 6.5)), epoch)
    assert [v.flops for v in run.validations] == [320.0, 640.0, 960.0]
    row = ComputeRow("stid", [run])
    assert row.at_flops(100.0) is None and row.at_flops(700.0) == (7.0, False, None, 1)
    assert row.at_flops(1000.0) == (6.5, False, 6.0, 1)  # finished within: its test figure beside it
    assert run.flop_rate == pytest.approx(960.0 / 200.0)  # 100 s x 2 threads
    assert ComputeRow("stid", [run_compute(_record())]).at_flops(1e18) is None  # not counted: no reading

    # a CSV log that lost its first two epochs is not placed by the seconds it still logs, but by its sittings
    sittings = [{"train_seconds": 60.0, "epochs_reached": 2, "threads": 1},
                {"train_seconds": 30.0, "epochs_reached": 3, "threads": 1}]
    partial = _record(curve=(9.0, 7.0, 6.5), sittings=sittings)
    partial["val_curve"] = [point | {EPOCH_SECONDS: 30.0} for point in partial["val_curve"][2:]]
    placed = run_compute(partial)
    assert placed.timing == "sittings" and [v.core_seconds for v in placed.validations] == [90.0]


def test_a_budget_reads_the_best_so_far_and_says_what_more_compute_could_change():
    finished = run_compute(_record(curve=(9.0, 7.0, 6.5, 6.8), rmse=6.6))  # validations at 50, 100, 150, 200 core-s
    capped = run_compute(_record(seed=1, curve=(8.0, 7.5), stop="time cap", train_seconds=50.0))  # at 50, 100
    row = ComputeRow("stid", [finished, capped])
    assert row.at(40.0) is None  # no validation yet
    assert row.at(60.0) == (pytest.approx(8.5), False, None, 2)
    mean, upper_bound, test, seeds = row.at(1000.0)  # the capped seed stopped before: its 7.5 could still fall
    assert (mean, upper_bound, test, seeds) == (pytest.approx(7.0), True, None, 2)
    assert ComputeRow("stid", [finished]).at(1000.0) == (6.5, False, 6.6, 1)  # finished within: its test beside it


def test_records_of_two_periods_never_share_a_row_and_every_table_names_its_period():
    long = _record(rmse=6.5)  # written before records held their period: the registered protocol's span
    short = _record(rmse=5.0, period=("2014-08-01T00:00", "2014-09-29T23:00"))
    assert record_period(long) == ("2014-04-01T00:00", "2014-09-30T23:00")
    rows = ledger_rows([long, short], "bikenyc1")
    assert [row.label for row in rows] == ["stid [2014-08-01 00:00 to 2014-09-29 23:00]",
                                           "stid [2014-04-01 00:00 to 2014-09-30 23:00]"]
    alone = render(ledger_rows([long], "bikenyc1"), "bikenyc1", 0, ["ledger"])
    assert alone.startswith("# bikenyc1, channel 0 (2014-04-01 00:00 to 2014-09-30 23:00)")
    sixty = render(ledger_rows([_record(dataset="bikenyc1-60d")], "bikenyc1-60d"), "bikenyc1-60d", 0, ["ledger"])
    assert sixty.startswith("# bikenyc1-60d, channel 0 (2014-08-01 00:00 to 2014-09-29 23:00)")


def test_the_compute_report_is_rebuilt_from_records_alone_with_zero_or_more(tmp_path, capsys):
    ledger = tmp_path / "ledger" / "bikenyc1"
    ledger.mkdir(parents=True)
    records = [_record(model="stid", rmse=6.6), _record(model="tau", curve=(12.0, 8.0), stop="time cap",
                                                        capability="AVX2", train_seconds=1400.0, threads=1),
               _record(model="ha-week", curve=(), stop="not trained", train_seconds=0.0),
               _record(model="linear-ar", rmse=6.1, curve=(), stop="not trained", train_seconds=0.0,
                       val={"rmse": 6.25, "mae": 3.0}, fitted_by="least squares per cell")]
    for record in records:
        (ledger / f"{record['model']}.json").write_text(json.dumps(record))
    text, written = compute([tmp_path / "ledger"], "bikenyc1", 0, tmp_path / "out" / "compute-bikenyc1")
    assert [path.name for path in written] == ["compute-bikenyc1.md", "compute-bikenyc1.png"]
    assert all(path.stat().st_size > 0 for path in written) and written[0].read_text() == text
    table = [line for line in text.splitlines() if line.startswith(("| stid", "| tau"))]
    assert len(table) == 4 and "ha-week" not in text  # a closed-form model has no validation curve
    # one scored on validation stands beside the curves as a reference level
    assert "| linear-ar | 6.250 | 6.100 | least squares per cell |" in text
    # stid finished within 200 core-s: its test figure beside the best; tau first validated at 700 core-s, its cap stopped it at 1400
    assert table[0].startswith("| stid | **6.400** (test 6.600) | **6.400** (test 6.600) |")
    assert table[1].startswith("| tau | - | ≤ 8.000 | ≤ 8.000 |") and "AVX2" in table[1]
    assert "(2014-04-01 00:00 to 2014-09-30 23:00)" in text.splitlines()[0]
    # the same rows against counted work, from each record's settings and the dataset's windows
    stid_flops = next(line for line in table[2:] if line.startswith("| stid"))
    assert stid_flops.split(" | ")[-2] == "0.0762"  # GFLOP per training window of stid at its defaults
    assert "- Best within 1 PFLOP: stid." in text

    empty = tmp_path / "out" / "compute-bikenyc1-60d"
    assert main(["ledger", "compute", "-d", "bikenyc1-60d", "--ledger", str(tmp_path / "ledger"),
                 "--out", str(empty)]) == 0
    assert "No learned records of bikenyc1-60d" in capsys.readouterr().out
    assert empty.with_name(empty.name + ".png").is_file()
