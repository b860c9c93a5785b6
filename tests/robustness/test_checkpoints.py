"""Checkpoints are written atomically (``AtomicCheckpointIO``), and a torn ``last.ckpt`` never blocks a run."""

from __future__ import annotations

import errno

import pytest
import torch
from robust_helpers import fit_command

from stvfm.cli.main import main
from stvfm.errors import OutputError
from stvfm.training.checkpoints import AtomicCheckpointIO, load_checkpoint


def _failing_save(real_save, fail_at: int):
    """torch.save that writes half a file, then meets a full disk, on call number ``fail_at``."""
    calls = {"n": 0}

    def save(obj, target, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == fail_at:
            with open(target, "wb") as handle:
                handle.write(b"PK\x03\x04 half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, target, *args, **kwargs)

    return save


def test_a_checkpoint_write_that_fails_midway_leaves_the_old_checkpoint_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"weights": torch.ones(3)}, target)
    before = target.read_bytes()
    monkeypatch.setattr(torch, "save", _failing_save(torch.save, fail_at=1))
    with pytest.raises(OutputError, match="last.ckpt: cannot write it"):
        AtomicCheckpointIO().save_checkpoint({"weights": torch.zeros(3)}, target)
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_a_full_disk_in_training_is_one_line_and_the_run_resumes_from_good_checkpoints(
        tmp_path, tiny_city, monkeypatch, capsys):
    out = tmp_path / "run"
    command = fit_command(tiny_city, out, epochs=3)[3:]  # the CLI arguments, run in this process
    monkeypatch.setattr(torch, "save", _failing_save(torch.save, fail_at=3))  # epoch 0 wrote best and last
    assert main(command) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and ".ckpt: cannot write it (No space left on device)" in err
    for name in ("best.ckpt", "last.ckpt"):
        load_checkpoint(out / "checkpoints" / name)  # whole, or the later run could not trust it
    assert not list(out.rglob("*.tmp"))
    monkeypatch.undo()
    assert main(command) == 0
    assert load_checkpoint(out / "checkpoints" / "last.ckpt")["epoch"] == 2


def test_a_torn_last_checkpoint_is_one_line_with_the_fix_and_overwrite_starts_afresh(tmp_path, tiny_city, capsys):
    out = tmp_path / "run"
    command = fit_command(tiny_city, out, epochs=1)[3:]
    assert main(command) == 0
    last = out / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # torn by a writer that was not atomic
    capsys.readouterr()
    assert main(command) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "last.ckpt" in err and "--overwrite" in err and "delete it" in err
    assert main([*command, "--overwrite"]) == 0
    assert load_checkpoint(last)["epoch"] == 0
