"""What marks a run folder's state, shared by the runner (which writes it) and the reports (which read it)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

#: Marks a run folder whose run has been accepted but not finished: its metrics.json, if any, is of an earlier run.
IN_PROGRESS_NAME = ".in-progress"
#: What a run writes into its folder: all that ``--overwrite`` clears.
RUN_OUTPUTS = ("config.yaml", "metrics.json", "predictions.npz", "checkpoints", "logs", IN_PROGRESS_NAME)


def in_progress(folder: str | os.PathLike) -> bool:
    """Whether a run was accepted into ``folder`` and has not finished (its metrics.json is not its own)."""
    return (Path(folder) / IN_PROGRESS_NAME).exists()


def clear_run(out: Path) -> None:
    """Remove what a run wrote into ``out``, nothing else (``--out`` may be a folder with other files)."""
    for name in RUN_OUTPUTS:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
