"""Each model's rolling history of observed frames, in one SQLite file that outlives the service.

A write is one transaction (``BEGIN IMMEDIATE``): the frames of an observation are all stored, the
history is trimmed to its newest ``keep`` steps, or nothing changes. Several worker processes may
share the file: SQLite serialises their writes (WAL journal, a busy timeout) and each append checks
continuity inside its own transaction, so two workers never interleave frames.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from stvfm.errors import ConfigError, RequestError
from stvfm.serving.frames import Frames, iso
from stvfm.serving.models import ServedModel

SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    name TEXT PRIMARY KEY,
    channels INTEGER NOT NULL, height INTEGER NOT NULL, width INTEGER NOT NULL,
    interval_minutes INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS frames (
    model TEXT NOT NULL REFERENCES models(name),
    step INTEGER NOT NULL,  -- seconds since 1970-01-01 of the frame's wall-clock timestamp
    frame BLOB NOT NULL,    -- float32 (C, H, W), C order
    PRIMARY KEY (model, step)
) WITHOUT ROWID;
"""
BUSY_TIMEOUT_S = 10.0


class HistoryStore:
    """Observed frames per model; opened once per process, a connection per operation (any thread may call)."""

    def __init__(self, path: str | Path, keep_steps: int):
        self.path = Path(path)
        self.keep_steps = keep_steps
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connection() as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(SCHEMA)
        except sqlite3.DatabaseError as error:
            raise ConfigError(f"{self.path}: not a usable history store ({error})") from None

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            yield db
        finally:
            db.close()

    def register(self, model: ServedModel) -> None:
        """Claim the model's name in the store; a history kept for another grid or interval is refused."""
        row = (model.name, *model.frame_shape, model.interval_minutes)
        with self._connection() as db:
            db.execute("INSERT OR IGNORE INTO models VALUES (?, ?, ?, ?, ?)", row)
            stored = db.execute("SELECT * FROM models WHERE name = ?", (model.name,)).fetchone()
        if tuple(stored) != row:
            raise ConfigError(f"{self.path}: keeps a history for {model.name!r} of grid {tuple(stored[1:4])} at "
                              f"{stored[4]} min, but the export has grid {model.frame_shape} at {model.interval_minutes} "
                              "min; give another --store or rename the export's folder")

    def append(self, model: ServedModel, frames: Frames) -> tuple[int, str]:
        """Store frames that continue the history exactly; returns the steps kept and the newest timestamp."""
        steps = frames.timestamps.astype(np.int64).tolist()
        rows = [(model.name, step, frame.tobytes()) for step, frame in zip(steps, frames.values, strict=True)]
        with self._connection() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                (newest,) = db.execute("SELECT MAX(step) FROM frames WHERE model = ?", (model.name,)).fetchone()
                expected = None if newest is None else newest + model.interval_minutes * 60
                if expected is not None and steps[0] != expected:
                    raise RequestError(409, f"frames start at {iso(frames.timestamps[:1])[0]}, but the history of "
                                            f"model {model.name!r} ends at {_iso(newest)}: the next frame is "
                                            f"{_iso(expected)}")
                db.executemany("INSERT INTO frames VALUES (?, ?, ?)", rows)
                db.execute("DELETE FROM frames WHERE model = ? AND step <= ?",
                           (model.name, steps[-1] - self.keep_steps * model.interval_minutes * 60))
                (count,) = db.execute("SELECT COUNT(*) FROM frames WHERE model = ?", (model.name,)).fetchone()
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        return count, iso(frames.timestamps[-1:])[0]

    def latest(self, model: ServedModel, steps: int) -> Frames:
        """The newest ``steps`` frames (fewer when fewer are kept), oldest first."""
        with self._connection() as db:
            rows = db.execute("SELECT step, frame FROM frames WHERE model = ? ORDER BY step DESC LIMIT ?",
                              (model.name, steps)).fetchall()
        rows.reverse()
        values = np.array([np.frombuffer(frame, dtype=np.float32) for _, frame in rows], dtype=np.float32)
        return Frames(values.reshape(len(rows), *model.frame_shape),
                      np.array([step for step, _ in rows], dtype="datetime64[s]"))

    def summary(self, model: ServedModel) -> tuple[int, str | None]:
        """How many steps are kept and the newest one's timestamp (None before the first observation)."""
        with self._connection() as db:
            count, newest = db.execute("SELECT COUNT(*), MAX(step) FROM frames WHERE model = ?",
                                       (model.name,)).fetchone()
        return count, None if newest is None else _iso(newest)


def _iso(step: int) -> str:
    return iso(np.array([step], dtype="datetime64[s]"))[0]
