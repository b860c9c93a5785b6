"""Where run folders go by default: ``$STVFM_RUNS``, else ``runs/`` in the working directory.

A runs root outside the work tree (a mounted disk, a synced folder) lets runs outlive the
checkout they were started from; commands that take ``--out`` still write where they are told.

Imports from stvfm: none.
"""

from __future__ import annotations

import os
from pathlib import Path

RUNS_ENV = "STVFM_RUNS"


def runs_root() -> Path:
    """The runs root, read at call time so a changed environment is honoured."""
    return Path(os.environ.get(RUNS_ENV) or "runs").expanduser()


def default_run_folder(*parts: str) -> Path:
    """``runs_root() / parts...``: the folder a command uses when given no ``--out``."""
    return runs_root().joinpath(*parts)
