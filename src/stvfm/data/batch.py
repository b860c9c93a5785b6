"""The one batch contract every forecaster reads, and the one place its keys are written.

A batch is a dict of tensors with a leading window axis (none for a single dataset item):

- ``x`` (P, C, H, W) history and ``y`` (Q, C, H, W) future, in scaled units (``y`` absent when
  the future is unknown, as in ``stvfm predict``);
- ``x_time`` (P, 2) and ``y_time`` (Q, 2): weekday (Monday = 0) and slot of the day;
- ``start``: the window's first series index;
- ``daily`` (D, Q, C, H, W) and ``weekly`` (K, Q, C, H, W): the future steps 1..D days or
  1..K weeks earlier, present only for models that read periodic context;
- ``x_observed`` (P, C, H, W) and ``y_observed`` (Q, C, H, W) bool: False where the history or
  the future holds a missing value, present only for a series with gaps. Values are never NaN:
  a missing one holds what the gap rule filled in (``stvfm.data.gaps``), and losses and metrics
  count the targets ``y_observed`` marks, all of them when it is absent.
"""

from __future__ import annotations

import torch

from stvfm.shape import ForecastShape

Batch = dict[str, torch.Tensor]
KEYS = ("x", "y", "x_time", "y_time", "start", "daily", "weekly", "x_observed", "y_observed")


def build_batch(x: torch.Tensor, x_time: torch.Tensor, y_time: torch.Tensor, start: torch.Tensor,
                y: torch.Tensor | None = None, daily: torch.Tensor | None = None,
                weekly: torch.Tensor | None = None, x_observed: torch.Tensor | None = None,
                y_observed: torch.Tensor | None = None) -> Batch:
    """The batch of these parts, optional ones left out when absent, so models see one key set."""
    parts = {"x": x, "y": y, "x_time": x_time, "y_time": y_time, "start": start, "daily": daily, "weekly": weekly,
             "x_observed": x_observed, "y_observed": y_observed}
    return {key: parts[key] for key in KEYS if parts[key] is not None}


def series_window(values: torch.Tensor, time_feats: torch.Tensor, start: int, history: int, horizon: int,
                  slots_per_day: int, daily_context: int = 0, weekly_context: int = 0,
                  observed: torch.Tensor | None = None) -> Batch:
    """The window of a series starting at ``start``, sliced (never copied) from the shared tensors.

    ``time_feats`` must cover the future; ``values`` may end where the future begins, and then
    the window has no ``y``. Periodic context is the same future steps whole days or weeks earlier.
    ``observed``: the series' mask (None without gaps), sliced into the window's masks.
    """
    future = start + history
    end = future + horizon

    def periodic(count: int, period: int) -> torch.Tensor | None:
        if not count:
            return None
        return torch.stack([values[future - k * period: future - k * period + horizon] for k in range(1, count + 1)])

    has_future = values.shape[0] >= end
    return build_batch(
        x=values[start:future],
        y=values[future:end] if has_future else None,
        x_time=time_feats[start:future],
        y_time=time_feats[future:end],
        start=torch.tensor(start, dtype=torch.long),
        daily=periodic(daily_context, slots_per_day),
        weekly=periodic(weekly_context, 7 * slots_per_day),
        x_observed=None if observed is None else observed[start:future],
        y_observed=observed[future:end] if observed is not None and has_future else None,
    )


def random_batch(shape: ForecastShape, batch_size: int = 3, seed: int = 0) -> Batch:
    """A random but well-formed batch, values in [-1, 1]: for tests, FLOP counts and timings without data."""
    gen = torch.Generator().manual_seed(seed)

    def frames(*steps: int) -> torch.Tensor:
        return torch.rand(batch_size, *steps, shape.channels, shape.height, shape.width, generator=gen) * 2 - 1

    def times(steps: int) -> torch.Tensor:
        slot = torch.randint(0, shape.slots_per_day, (batch_size, 1), generator=gen) + torch.arange(steps)
        weekday = torch.randint(0, 7, (batch_size, 1), generator=gen).expand(-1, steps)
        return torch.stack([weekday, slot % shape.slots_per_day], dim=-1).long()

    # drawn in this order so a seed gives the batches it always gave
    x, y = frames(shape.history), frames(shape.horizon)
    x_time, y_time = times(shape.history), times(shape.horizon)
    daily = frames(shape.daily_context, shape.horizon) if shape.daily_context else None
    weekly = frames(shape.weekly_context, shape.horizon) if shape.weekly_context else None
    return build_batch(x=x, y=y, x_time=x_time, y_time=y_time, start=torch.arange(batch_size),
                       daily=daily, weekly=weekly)
