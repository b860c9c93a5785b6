"""A dataset made ready for the protocol: selected, scaled once, gaps filled, split, and windowed on demand."""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from stvfm.data.gaps import fill_gaps
from stvfm.data.loading import load_series
from stvfm.data.scaling import MinMaxScaler
from stvfm.data.series import GridSeries
from stvfm.data.windows import SPLITS, ProtocolConfig, WindowDataset, chronological_split, time_features
from stvfm.errors import ConfigError, DataError, DataWarning
from stvfm.shape import ForecastShape


@dataclass(frozen=True)
class PreparedData:
    series: GridSeries
    protocol: ProtocolConfig
    scaler: MinMaxScaler
    #: float32 (T, C, H, W) min-max scaled (the fitted range maps to [-1, 1]), missing values filled by the
    #: protocol's gap rule; every WindowDataset slices this one array.
    values: np.ndarray
    #: int64 (T, 2): weekday (Monday = 0) and slot of day.
    time_features: np.ndarray
    #: split name -> (begin, end) series indices.
    splits: dict[str, tuple[int, int]]
    #: bool (T, C, H, W), False where the series misses a value; None for a series without gaps.
    observed: np.ndarray | None = None

    @property
    def slots_per_day(self) -> int:
        return self.series.slots_per_day

    def dataset(self, split: str) -> WindowDataset:
        if split not in self.splits:
            raise ConfigError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        return WindowDataset(
            self.values,
            self.time_features,
            self.splits[split],
            self.protocol.history,
            self.protocol.horizon,
            self.slots_per_day,
            self.protocol.daily_context,
            self.protocol.weekly_context,
            observed=self.observed,
            skip_gaps=self.protocol.gap_fill == "skip",
        )

    def scaled_with_gaps(self) -> np.ndarray:
        """The scaled series with NaN where a value is missing, for models that skip missing values themselves."""
        return self.values if self.observed is None else np.where(self.observed, self.values, np.float32(np.nan))

    @property
    def forecast_shape(self) -> ForecastShape:
        _, channels, height, width = self.series.shape
        return ForecastShape(
            history=self.protocol.history,
            horizon=self.protocol.horizon,
            channels=channels,
            height=height,
            width=width,
            slots_per_day=self.slots_per_day,
            daily_context=self.protocol.daily_context,
            weekly_context=self.protocol.weekly_context,
            scaled_zero=float(self.scaler.transform(0.0)),
        )

    def describe(self) -> dict:
        """Plain-JSON summary for ``stvfm data info`` and run records."""
        values = self.series.values
        datasets = {split: self.dataset(split) for split in self.splits}
        return {
            "name": self.series.name,
            "source": self.series.source,
            "shape": list(self.series.shape),
            "channels": list(self.series.channel_names),
            "start": str(self.series.timestamps[0]),
            "end": str(self.series.timestamps[-1]),
            "interval_minutes": self.series.interval_minutes,
            "splits": {
                split: {"begin": begin, "end": end, "windows": len(datasets[split])}
                | ({"windows_with_history_gaps": datasets[split].history_gap_windows} if self.observed is not None else {})
                for split, (begin, end) in self.splits.items()
            },
            "value_range": {"min": float(np.nanmin(values)), "max": float(np.nanmax(values)),
                            "mean": float(np.nanmean(values))},
            "missing_values": int(np.isnan(values).sum()),
            "scaler": self.scaler.to_dict(),
            "protocol": {**asdict(self.protocol), "split": list(self.protocol.split)},
            **({"metadata": self.series.attrs["metadata"]} if "metadata" in self.series.attrs else {}),
        }


def prepare_data(
    name_or_path: str | os.PathLike,
    protocol: ProtocolConfig | None = None,
    root: str | os.PathLike | None = None,
) -> PreparedData:
    protocol = protocol or ProtocolConfig()
    series = load_series(name_or_path, root=root, channel=protocol.channel, steps=protocol.steps)
    return prepare_series(series, protocol)


#: A value this many times the 99th percentile of magnitudes (at least 1) is called an outlier.
OUTLIER_FACTOR = 1000.0


def _warn_of_outliers(series: GridSeries) -> None:
    """Warn of the largest value far beyond the rest (a 1e30 typo): min-max scaling would squash every other value."""
    magnitudes = np.abs(series.values)
    typical = max(1.0, float(np.nanpercentile(magnitudes, 99)))
    worst = int(np.nanargmax(magnitudes))
    if float(magnitudes.flat[worst]) > OUTLIER_FACTOR * typical:  # in float64: a float32 limit would overflow
        step, channel, y, x = np.unravel_index(worst, magnitudes.shape)
        warnings.warn(f"{series.source or series.name}: value {series.values.flat[worst]:.3g} at step {step} "
                      f"({series.timestamps[step]}), channel {channel}, cell (y={y}, x={x}) is over "
                      f"{OUTLIER_FACTOR:g} times the 99th percentile ({typical:.3g}); check it", DataWarning, stacklevel=3)


def prepare_series(series: GridSeries, protocol: ProtocolConfig | None = None) -> PreparedData:
    """The same as ``prepare_data`` for a series already in memory (channel/steps already applied)."""
    protocol = protocol or ProtocolConfig()
    where = series.source or series.name
    if (protocol.daily_context or protocol.weekly_context) and (24 * 60) % series.interval_minutes:
        raise ConfigError(f"{where}: periodic context needs an interval dividing a day, got {series.interval_minutes} min")
    _warn_of_outliers(series)
    length = series.values.shape[0]
    bounds = chronological_split(length, protocol.split)
    fit_begin, fit_end = bounds["train"] if protocol.scaling == "train" else (0, length)
    if fit_end <= fit_begin:
        raise DataError(f"{where}: series of {length} steps leaves no training steps to fit the scaler")
    try:
        scaler = MinMaxScaler.fit(series.values[fit_begin:fit_end])
    except DataError as error:
        raise DataError(f"{where}: steps {fit_begin}..{fit_end - 1} fit the scaler: {error}") from None
    features = time_features(series.timestamps, series.interval_minutes)
    scaled = np.ascontiguousarray(scaler.transform(series.values), dtype=np.float32)
    observed = series.observed if series.has_gaps else None
    if observed is not None:
        try:
            scaled = fill_gaps(scaled, observed, features[:, 1], bounds["train"][1], protocol.gap_fill)
        except DataError as error:
            raise DataError(f"{where}: {error}") from None
    prepared = PreparedData(
        series=series,
        protocol=protocol,
        scaler=scaler,
        values=scaled,
        time_features=features,
        splits=bounds,
        observed=observed,
    )
    for split in SPLITS:
        windows = prepared.dataset(split)
        if len(windows) == 0:
            begin, end = bounds[split]
            context = protocol.daily_context or protocol.weekly_context
            if windows.history_gap_windows:
                raise DataError(f"{where}: every window of split {split!r} has a missing value in its history, and "
                                "the gap rule 'skip' leaves them out; choose the rule 'last' or 'slot-mean'")
            raise DataError(
                f"{where}: series of {length} steps is shorter than the protocol needs: split {split!r} "
                f"has {end - begin} steps and no window of {protocol.history}+{protocol.horizon} steps"
                + (" with its periodic context" if context else "")
                + " fits"
            )
    return prepared
