"""The sittings of a run: each ``fit`` process that trained it, with the compute it spent.

Long runs on small machines are trained in several sittings (a time cap, a session that ends, a
kill), each resuming from the last epoch end. Accuracy against compute needs the whole sum, so
every sitting is logged in the run folder at each epoch end, surviving a kill that never reaches
metrics.json; what a killed sitting trained after its last epoch end is redone by the next one and
is not counted.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

from stvfm import host
from stvfm.atomic import write_json_atomic

SITTINGS_NAME = "sittings.json"


def read_sittings(out: Path) -> list[dict[str, Any]]:
    """The sittings logged in ``out``; [] where none are (a fresh run, or a folder from before sittings)."""
    try:
        logged = json.loads((out / SITTINGS_NAME).read_text())
    except (OSError, ValueError):
        return []
    return [entry for entry in logged if isinstance(entry, dict)] if isinstance(logged, list) else []


class SittingLog(L.Callback):
    """Appends this process's sitting to the folder's log and keeps it current at every epoch end."""

    def __init__(self, out: Path, resumed: bool, precision: str) -> None:
        self.out = out
        self.earlier = read_sittings(out) if resumed else []
        self.began = time.perf_counter()
        self.entry = {"began": time.strftime("%Y-%m-%dT%H:%M:%S"), "train_seconds": 0.0, "epochs_reached": None,
                      "threads": torch.get_num_threads(), "cpu_capability": host.describe()["cpu_capability"],
                      "precision": precision}

    @property
    def sittings(self) -> list[dict[str, Any]]:
        return [*self.earlier, self.entry]

    def _log(self, trainer: L.Trainer, epochs_done: int) -> None:
        if not trainer.is_global_zero:
            return
        self.entry.update(train_seconds=round(time.perf_counter() - self.began, 1), epochs_reached=epochs_done)
        write_json_atomic(self.out / SITTINGS_NAME, self.sittings)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log(trainer, trainer.current_epoch)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log(trainer, trainer.current_epoch + 1)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._log(trainer, trainer.current_epoch)


def summary(sittings: list[dict[str, Any]]) -> dict[str, Any]:
    """What metrics.json keeps of them: the list and the training seconds summed over it."""
    return {"sittings": sittings, "total_train_seconds": round(sum(s.get("train_seconds") or 0 for s in sittings), 1)}
