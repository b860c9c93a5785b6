"""The one in-memory form every source produces: a validated (T, C, H, W) grid series."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from stvfm.errors import ConfigError, DataError

#: The channel setting that keeps every channel of a series (``--channel -1`` on the command line). A
#: channel is an index or this, never None: in a run's settings None only ever means "not given".
ALL_CHANNELS = "all"
#: How ``--channel`` spells ``ALL_CHANNELS``.
ALL_CHANNELS_FLAG = -1


def channel_flag(channel: int | str) -> int:
    """The ``--channel`` value that asks for ``channel``, for commands written into reports."""
    return ALL_CHANNELS_FLAG if channel == ALL_CHANNELS else int(channel)


def check_channel(channel: object, where: str = "channel") -> None:
    """A channel setting is a channel index (0 or more) or ``ALL_CHANNELS``; anything else is one line."""
    if channel != ALL_CHANNELS and (not isinstance(channel, int) or isinstance(channel, bool) or channel < 0):
        raise ConfigError(f"{where} must be a channel index (0 or more) or {ALL_CHANNELS!r} (all channels), "
                          f"got {channel!r}")

MINUTES_PER_DAY = 24 * 60


def slots_per_day(interval_minutes: int) -> int:
    """Slots of the day the calendar features count: slot = minute of the day // interval, so an
    interval that does not divide a day (7, 25 min) has a last, shorter slot: ceil(1440 / interval)."""
    return -(-MINUTES_PER_DAY // interval_minutes)


@dataclass(frozen=True)
class GridSeries:
    """A regular-interval grid series with its timestamps.

    ``values`` is float32 (T, C, H, W), NaN where a value is missing (an outage, an unobserved
    interval; see ``observed``); ``timestamps`` is datetime64[s] (T,), strictly increasing with a
    constant step equal to ``interval_minutes``.
    """

    name: str
    values: np.ndarray
    timestamps: np.ndarray
    interval_minutes: int
    channel_names: tuple[str, ...]
    source: str = ""
    attrs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = self.source or self.name
        values = self.values
        if not isinstance(values, np.ndarray) or values.ndim != 4:
            shape = getattr(values, "shape", None)
            raise DataError(f"{where}: expected a (time, channel, y, x) array, got shape {shape}")
        if not np.issubdtype(values.dtype, np.number) or np.iscomplexobj(values):
            raise DataError(f"{where}: values must be real numbers, got dtype {values.dtype}")
        if values.shape[0] == 0 or 0 in values.shape[1:]:
            raise DataError(f"{where}: empty series, shape {values.shape}")
        if values.dtype != np.float32:
            object.__setattr__(self, "values", values.astype(np.float32))
        if np.isinf(self.values).any():
            bad = int(np.isinf(self.values).sum())
            raise DataError(f"{where}: {bad} infinite values; mark a missing value with NaN, not inf")
        if np.isnan(self.values).all():
            raise DataError(f"{where}: every value is missing (NaN)")
        if self.timestamps.shape != (values.shape[0],):
            raise DataError(
                f"{where}: {self.timestamps.shape[0] if self.timestamps.ndim else 0} timestamps "
                f"for {values.shape[0]} time steps"
            )
        if len(self.channel_names) != values.shape[1]:
            raise DataError(f"{where}: {len(self.channel_names)} channel names for {values.shape[1]} channels")
        if self.interval_minutes <= 0:
            raise DataError(f"{where}: interval must be positive, got {self.interval_minutes} minutes")
        if values.shape[0] > 1:
            steps = np.diff(self.timestamps.astype("datetime64[s]").astype(np.int64))
            if not (steps == self.interval_minutes * 60).all():
                raise DataError(
                    f"{where}: timestamps are not evenly spaced at {self.interval_minutes} min "
                    f"(first gap at step {int(np.argmax(steps != self.interval_minutes * 60)) + 1})"
                )

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return tuple(self.values.shape)  # type: ignore[return-value]

    @property
    def slots_per_day(self) -> int:
        return slots_per_day(self.interval_minutes)

    def sha256(self) -> str:
        """Digest of what the series holds (values, timestamps, interval, channel names): part of a run's
        identity, so a run never resumes on a file that was replaced under the same name."""
        digest = hashlib.sha256()
        digest.update(f"{self.values.shape}|{self.interval_minutes}|{'|'.join(self.channel_names)}|".encode())
        digest.update(self.timestamps.astype("datetime64[s]").astype("int64").tobytes())
        digest.update(np.ascontiguousarray(self.values).tobytes())
        return digest.hexdigest()

    @property
    def observed(self) -> np.ndarray:
        """bool (T, C, H, W): True where a value was observed, False where it is missing (NaN)."""
        return ~np.isnan(self.values)

    @property
    def has_gaps(self) -> bool:
        return bool(np.isnan(self.values).any())

    def select_channels(self, channel: int | str | None) -> GridSeries:
        """Keep one channel (an index) or all (``ALL_CHANNELS``, or None: none chosen)."""
        if channel is None or channel == ALL_CHANNELS:
            return self
        n = self.values.shape[1]
        if not -n <= channel < n:
            raise DataError(f"{self.source or self.name}: channel {channel} out of range, dataset has {n} channel(s)")
        channel %= n
        return GridSeries(
            name=self.name,
            values=self.values[:, channel : channel + 1],
            timestamps=self.timestamps,
            interval_minutes=self.interval_minutes,
            channel_names=(self.channel_names[channel],),
            source=self.source,
            attrs={**self.attrs, "channel": channel},
        )

    def between(self, first: str, last: str) -> GridSeries:
        """The steps from ``first`` to ``last`` inclusive (ISO timestamps); both must be steps of the series."""
        where = self.source or self.name
        bounds = np.array([first, last], dtype="datetime64[s]")
        indices = np.searchsorted(self.timestamps.astype("datetime64[s]"), bounds)
        for bound, index in zip(bounds, indices, strict=True):
            if index >= len(self.timestamps) or self.timestamps[index] != bound:
                raise DataError(f"{where}: period bound {bound} is not a time step of the series "
                                f"({self.timestamps[0]} to {self.timestamps[-1]})")
        start, stop = int(indices[0]), int(indices[1]) + 1
        if stop <= start:
            raise DataError(f"{where}: period ends ({last}) before it starts ({first})")
        return GridSeries(
            name=self.name,
            values=self.values[start:stop],
            timestamps=self.timestamps[start:stop],
            interval_minutes=self.interval_minutes,
            channel_names=self.channel_names,
            source=self.source,
            attrs={**self.attrs, "period": f"{bounds[0]}..{bounds[1]}"},
        )

    def head(self, steps: int) -> GridSeries:
        """The first ``steps`` steps (e.g. the paper's 60-day TaxiNYC period)."""
        return GridSeries(
            name=self.name,
            values=self.values[:steps],
            timestamps=self.timestamps[:steps],
            interval_minutes=self.interval_minutes,
            channel_names=self.channel_names,
            source=self.source,
            attrs=dict(self.attrs),
        )

