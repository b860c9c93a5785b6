"""One run identity (``RunConfig``): resumes, reuse and run folders refuse another run, and leave it untouched."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from robust_helpers import write_tiny_city

from stvfm.cli.main import main
from stvfm.data.series import ALL_CHANNELS
from stvfm.errors import ConfigError, DataError
from stvfm.reports.tables import load_metrics
from stvfm.training import results
from stvfm.training.config import BUDGET, IDENTITY, RunConfig
from stvfm.training.folders import in_progress
from stvfm.training.runner import fit
from stvfm.training.settings import OptimConfig


def _config(city, out, **changes) -> RunConfig:
    """A one-epoch stid run at a constant rate: more epochs extend it (a cosine run's length is identity)."""
    settings = dict(model="stid", dataset=str(city), out=str(out), max_epochs=1, batch_size=16,
                    progress=False, accelerator="cpu", precision="32", optim=OptimConfig(schedule="constant"))
    return RunConfig(**{**settings, **changes})


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``folder`` with its content hash and modification time."""
    return {str(path.relative_to(folder)): (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_city):
    """A finished one-epoch stid run, copied fresh for each test that changes it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    fit(_config(tiny_city, out))
    return out


@pytest.fixture
def run_folder(finished, tmp_path):
    return Path(shutil.copytree(finished, tmp_path / "run"))


def test_the_identity_is_what_the_issue_lists_and_every_field_has_a_role():
    roles = {field.name: field.metadata["role"] for field in dataclasses.fields(RunConfig)}
    assert {name for name, role in roles.items() if role == IDENTITY} == {
        "model", "dataset", "channel", "steps", "scaling", "model_options", "batch_size", "limit_train_batches",
        "precision", "seed", "init_from", "optim", "data_sha256",
        "gap_fill"}  # how gaps in a history are filled changes what the model reads
    assert {name for name, role in roles.items() if role == BUDGET} == {"max_epochs", "max_minutes", "patience"}


CHANGES = {
    "model": {"model": "patchtst"},
    "dataset": {"dataset": "OTHER"},
    "channel": {"channel": ALL_CHANNELS},
    "steps": {"steps": 200},
    "scaling": {"scaling": "all"},
    "model_options": {"model_options": {"layers": 1}},
    "batch_size": {"batch_size": 8},
    "limit_train_batches": {"limit_train_batches": 0.5},
    "precision": {"precision": "bf16"},
    "seed": {"seed": 7},
    "init_from": {"init_from": "BEST"},
    "optim": {"optim": OptimConfig(lr=0.01, schedule="constant")},
}


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_a_run_differing_in_any_identity_field_is_refused_and_the_folder_left_as_it_was(
        run_folder, tiny_city, tmp_path, field):
    change = dict(CHANGES[field])
    if field == "dataset":
        change["dataset"] = str(write_tiny_city(tmp_path / "b.npz", days=11))
    if field == "init_from":
        change["init_from"] = str(run_folder / "checkpoints" / "best.ckpt")
    before = snapshot(run_folder)
    with pytest.raises(ConfigError, match=rf"config.yaml: left by another run \(differs in {field}[,)]") as raised:
        fit(_config(tiny_city, run_folder, max_epochs=2, **change))
    assert len(str(raised.value).splitlines()) == 1
    assert snapshot(run_folder) == before


def test_the_cli_refuses_another_dataset_in_one_line_and_overwrite_clears_the_folder(run_folder, tmp_path, capsys):
    other = write_tiny_city(tmp_path / "b.npz", days=11)
    before = snapshot(run_folder)
    command = ["fit", "-m", "stid", "-d", str(other), "-o", str(run_folder), "--max-epochs", "1",
               "--batch-size", "16", "--accelerator", "cpu", "--seed", "0"]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "differs in dataset" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert snapshot(run_folder) == before
    assert main([*command, "--overwrite"]) == 0
    assert json.loads((run_folder / "metrics.json").read_text())["settings"]["dataset"] == str(other)
    assert sorted(path.name for path in (run_folder / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]


def test_a_classical_evaluate_into_a_trained_folder_is_refused(run_folder, capsys):
    before = snapshot(run_folder)
    dataset = json.loads((run_folder / "metrics.json").read_text())["settings"]["dataset"]
    assert main(["evaluate", "-m", "ha-day", "-d", dataset, "-o", str(run_folder)]) == 2
    assert "differs in model" in capsys.readouterr().err
    assert snapshot(run_folder) == before


def test_an_extension_keeps_the_old_metrics_marked_in_progress_until_it_finishes(run_folder, tiny_city, monkeypatch):
    from stvfm.experiments.schedule import finished_metrics as _finished

    old_metrics = (run_folder / "metrics.json").read_bytes()
    monkeypatch.setattr(results, "run_test", lambda *args, **kwargs: (_ for _ in ()).throw(RuntimeError("killed")))
    with pytest.raises(RuntimeError, match="killed"):
        fit(_config(tiny_city, run_folder, max_epochs=2))
    assert (run_folder / "metrics.json").read_bytes() == old_metrics and in_progress(run_folder)
    with pytest.raises(DataError, match="in progress"):
        load_metrics(run_folder)  # `stvfm compare` does not show the old result as current
    assert _finished(_config(tiny_city, run_folder, max_epochs=2)) is None  # reproduce resumes it
    monkeypatch.undo()
    extended = fit(_config(tiny_city, run_folder, max_epochs=2))
    assert extended["epochs"] == 2 and not in_progress(run_folder)
    assert load_metrics(run_folder)["settings"]["max_epochs"] == 2


def test_reproduce_reuses_only_the_same_run_and_budget(run_folder, tiny_city):
    from stvfm.experiments.schedule import finished_metrics as _finished

    assert _finished(_config(tiny_city, run_folder))["epochs"] == 1
    assert _finished(_config(tiny_city, run_folder, max_epochs=3)) is None  # a larger budget: fit extends it
    with pytest.raises(ConfigError, match=r"finished with other settings \(batch_size\)"):
        _finished(_config(tiny_city, run_folder, batch_size=8))


def test_more_epochs_of_a_schedule_stretched_over_the_run_is_another_run(tiny_city, tmp_path):
    cosine = _config(tiny_city, tmp_path, optim=OptimConfig(schedule="cosine"))
    longer = dataclasses.replace(cosine, max_epochs=3)
    assert longer.identity_differences(cosine) == ["max_epochs (the cosine schedule spans them)"]
    assert not dataclasses.replace(cosine, max_minutes=5.0, patience=2).identity_differences(cosine)
    constant = _config(tiny_city, tmp_path)
    assert not dataclasses.replace(constant, max_epochs=3).identity_differences(constant)  # a budget: extends the run
    closed_form = RunConfig(model="ha-week", dataset=str(tiny_city), out=str(tmp_path), max_epochs=1)
    assert not dataclasses.replace(closed_form, max_epochs=3).identity_differences(closed_form)


@pytest.mark.parametrize(("change", "message"), [
    ({"batch_size": 0}, "batch_size: expected a number >= 1"),
    ({"max_epochs": 0}, "max_epochs: 0 only with --init-from"),
    ({"channel": -2}, r"channel must be a channel index \(0 or more\) or .all."),
    ({"limit_train_batches": -1}, "limit_train_batches: expected a number > 0"),
])
def test_settings_that_would_run_something_else_are_refused_before_writing(tmp_path, tiny_city, change, message):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=message):
        fit(_config(tiny_city, out, **change))
    assert not out.exists()


def test_stray_temporaries_of_killed_writes_are_removed_when_a_run_starts(run_folder, tiny_city):
    stray = run_folder / "checkpoints" / ".last.ckpt.abc123.tmp"
    stray.write_bytes(b"half a checkpoint")
    (run_folder / ".metrics.json.xyz.tmp").write_text("{")
    fit(_config(tiny_city, run_folder))
    assert not list(run_folder.rglob("*.tmp"))
