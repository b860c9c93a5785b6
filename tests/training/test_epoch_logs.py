"""A resumed run keeps every epoch's log rows, even when sittings are killed one after another, and a run
whose CSV log lost epochs to older code gets them back from its TensorBoard events."""

from __future__ import annotations

import csv
from pathlib import Path

from stvfm.training.claim import EARLIER_SITTINGS_LOG, keep_earlier_rows, restore_earlier_rows
from stvfm.training.progress import validation_curve


def _write_log(path: Path, epochs: range) -> None:
    """A CSV log as Lightning's CSVLogger writes it afresh: a step row and a validation row per epoch."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["epoch", "step", "train/loss_step", "val/rmse"])
        writer.writeheader()
        for epoch in epochs:
            writer.writerow({"epoch": epoch, "step": 10 * epoch + 5, "train/loss_step": 1.0 / (epoch + 1)})
            writer.writerow({"epoch": epoch, "step": 10 * epoch + 9, "val/rmse": 20.0 - epoch})


def _epochs(path: Path) -> list[int]:
    with open(path, newline="") as handle:
        return sorted({int(row["epoch"]) for row in csv.DictReader(handle)})


def test_two_killed_sittings_lose_no_epoch_of_the_log(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    _write_log(logs / "metrics.csv", range(0, 3))  # sitting 1: killed in epoch 2, last.ckpt holds epoch 1
    keep_earlier_rows(logs, resumed_epoch=1)
    _write_log(logs / "metrics.csv", range(2, 5))  # sitting 2 (the CSVLogger began a new file): killed in epoch 4
    keep_earlier_rows(logs, resumed_epoch=3)
    assert _epochs(logs / EARLIER_SITTINGS_LOG) == [0, 1, 2, 3]
    _write_log(logs / "metrics.csv", range(4, 6))  # sitting 3 runs to the end
    restore_earlier_rows(logs)
    assert not (logs / EARLIER_SITTINGS_LOG).exists()
    curve = validation_curve(logs / "metrics.csv")
    assert [point["epoch"] for point in curve] == list(range(6))
    assert [point["val/rmse"] for point in curve] == [20.0 - epoch for epoch in range(6)]


def test_a_fresh_run_keeps_no_rows_of_an_earlier_one(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    _write_log(logs / EARLIER_SITTINGS_LOG, range(0, 3))
    keep_earlier_rows(logs, resumed_epoch=None)
    assert not (logs / EARLIER_SITTINGS_LOG).exists()


def test_epochs_the_csv_log_lost_come_back_from_the_tensorboard_events(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    logs = tmp_path / "logs"
    writer = SummaryWriter(str(logs))  # what the first sitting's TensorBoardLogger wrote
    for epoch in range(0, 3):
        for tag, value in (("epoch", float(epoch)), ("val/rmse", 20.0 - epoch)):
            writer.add_scalar(tag, value, global_step=10 * epoch + 9)
    writer.close()
    _write_log(logs / "metrics.csv", range(3, 5))  # older code lost epochs 0-2 from the CSV log
    keep_earlier_rows(logs, resumed_epoch=4)
    restore_earlier_rows(logs)
    curve = validation_curve(logs / "metrics.csv")
    assert [point["epoch"] for point in curve] == list(range(5))
    assert [point["val/rmse"] for point in curve] == [20.0 - epoch for epoch in range(5)]
