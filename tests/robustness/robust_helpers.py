"""Helpers for the robustness tests: a tiny synthetic city and a real `stvfm` subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from stvfm.testing import write_synthetic_city

REPO_ROOT = Path(__file__).resolve().parents[2]


def child_env() -> dict[str, str]:
    """One thread per child process: the machine is small and shared, and it keeps fp32 sums in one order."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT / "src"), env.get("PYTHONPATH")]))
    return env


def fit_command(dataset: Path, out: Path, *extra: str, epochs: int = 6, batch_size: int = 8) -> list[str]:
    return [sys.executable, "-m", "stvfm.cli.main", "fit", "--model", "stid", "--dataset", str(dataset),
            "--out", str(out), "--max-epochs", str(epochs), "--batch-size", str(batch_size),
            "--precision", "32", "--accelerator", "cpu", "--seed", "3", "--patience", "50", *extra]


def run_to_end(command: list[str], timeout: float = 480) -> subprocess.CompletedProcess:
    done = subprocess.run(command, env=child_env(), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def one_line_error(capsys, *args) -> str:
    """Run the CLI in-process on ``args``; assert it failed with exit 2 and one line, no traceback; that line."""
    from stvfm.cli.main import main

    code = main(list(map(str, args)))
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def write_tiny_city(path: Path, days: int = 10) -> Path:
    """``days`` of hourly counts on a 5x3 grid (10 days: 168 train / 36 val / 36 test steps)."""
    return write_synthetic_city(path, days=days)
