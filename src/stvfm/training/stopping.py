"""How a training ended and what each epoch took: the words and the logged name a run records and the
ledger's tables read. Kept free of Lightning so that reading records stays cheap."""

from __future__ import annotations

#: Per-epoch wall seconds (training and validation) logged beside the validation figures.
EPOCH_SECONDS = "time/epoch_seconds"
#: Why training ended, as every table says it.
STOP_REASONS = ("early stop", "epoch cap", "time cap", "not trained")


def stop_reason(epochs: int, max_epochs: int, train_seconds: float, max_minutes: float | None,
                early_stopped: bool, timed_out: bool | None = None) -> str:
    """Which limit ended training (a cap is what readers must be told about). ``timed_out`` is what the
    trainer's timer saw; a time cap inside the last epoch is a time cap, not an epoch cap. Without it (a
    folder recorded before it existed) the wall time is judged against the cap."""
    if epochs == 0:
        return "not trained"
    if early_stopped:
        return "early stop"
    if timed_out is None:
        timed_out = epochs < max_epochs and bool(max_minutes) and train_seconds >= 0.95 * max_minutes * 60
    if timed_out:
        return "time cap"
    if epochs >= max_epochs:
        return "epoch cap"
    return "early stop"
