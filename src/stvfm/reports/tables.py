"""Reading run results back for side-by-side tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stvfm.errors import DataError


def load_metrics(run: str | Path) -> dict[str, Any]:
    """``metrics.json`` of a run folder (or the file itself), checked for the fields tables need."""
    path = Path(run)
    if path.is_dir():
        path = path / "metrics.json"
    if not path.is_file():
        raise DataError(f"{path}: no metrics.json (did the run finish?)")
    try:
        payload = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from None
    missing = [key for key in ("model", "dataset", "channel", "mae", "rmse", "n_windows") if key not in payload]
    if missing:
        raise DataError(f"{path}: missing field(s) {', '.join(missing)}")
    return payload
