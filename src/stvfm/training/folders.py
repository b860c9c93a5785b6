"""What marks a run folder's state, shared by the runner (which writes it) and the reports (which read it)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from stvfm.errors import ConfigError

#: Marks a run folder whose run has been accepted but not finished: its metrics.json, if any, is of an earlier run.
IN_PROGRESS_NAME = ".in-progress"
#: What a run writes into its folder: all that ``--overwrite`` clears.
RUN_OUTPUTS = ("config.yaml", "metrics.json", "predictions.npz", "checkpoints", "logs", IN_PROGRESS_NAME)
#: Held (``fcntl.flock``) by the one process running a run in the folder.
LOCK_NAME = ".stvfm.lock"
#: Where every epoch end leaves the state a later sitting resumes from (relative to the run folder).
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"
#: The temporaries a run's own atomic writes leave when killed before their rename (``stvfm.atomic``
#: names them ``.<target>.<random>.tmp``), by folder below the run folder; nothing else there is the run's.
OWN_TEMPORARIES = {
    ".": [f".{name}.*.tmp" for name in ("config.yaml", "metrics.json", "predictions.npz", IN_PROGRESS_NAME)],
    "checkpoints": [".best*.ckpt.*.tmp", ".last.ckpt.*.tmp"],
    "logs": [".metrics.csv.*.tmp"],
}


def in_progress(folder: str | os.PathLike) -> bool:
    """Whether a run was accepted into ``folder`` and has not finished (its metrics.json is not its own)."""
    return (Path(folder) / IN_PROGRESS_NAME).exists()


#: The files that are a run's record: an output of another command never replaces one.
RUN_RECORDS = ("config.yaml", "metrics.json", "predictions.npz", IN_PROGRESS_NAME)


def check_output(target: str | os.PathLike, inputs: tuple[str | os.PathLike, ...] = ()) -> None:
    """Refuse an output path that is one of the command's own inputs, a checkpoint, or a record of a run
    folder (its metrics.json holds what no rerun of a report gives back)."""
    target = Path(target)
    for source in map(Path, inputs):
        if target.exists() and source.exists() and os.path.samefile(target, source):
            raise ConfigError(f"{target}: is also an input of this command; write the output to another file")
    run_folder = any((target.parent / name).is_file() for name in ("metrics.json", "config.yaml"))
    if target.suffix == ".ckpt" or (target.name in RUN_RECORDS and run_folder):
        raise ConfigError(f"{target}: is a run's record; write the output to another file")


def own_temporaries(out: Path) -> list[Path]:
    """The run's own leftover temporaries in ``out``: never a file of another run below it, nor a user's."""
    return [path for folder, patterns in OWN_TEMPORARIES.items() for pattern in patterns
            for path in (out / folder).glob(pattern) if path.is_file()]


def clear_run(out: Path) -> None:
    """Remove what a run wrote into ``out``, nothing else (``--out`` may be a folder with other files)."""
    for name in RUN_OUTPUTS:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
