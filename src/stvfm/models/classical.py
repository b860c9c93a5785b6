"""Classical baselines: persistence, historical averages, per-cell ARIMA and seasonal linear autoregression.

They fit in closed form (or per cell with statsmodels) on the scaled training split and
never train by gradient descent. Whatever they learn lives in buffers, so they save and
load through ``state_dict`` like every other forecaster. Missing values (NaN in the series
``fit_series`` reads, ``x_observed`` in a window) are skipped: averages count observed values,
ARIMA's Kalman filter steps over them, persistence repeats the last observed frame value.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch

from stvfm.errors import ConfigError, DataError
from stvfm.models.base import ClassicalForecaster, ModelConfig
from stvfm.models.process_pool import map_in_processes
from stvfm.models.registry import register_model
from stvfm.shape import ForecastShape

DAYS_PER_WEEK = 7
#: statsmodels' ARIMA module, imported before a fitting process sets its BLAS threads (see process_pool).
STATSMODELS_ARIMA = "statsmodels.tsa.arima.model"


def _check_series(shape: ForecastShape, values: np.ndarray, time_features: np.ndarray, train_end: int) -> None:
    """Reject a series that does not match the model's shape before fitting anything on it."""
    expected = (shape.channels, shape.height, shape.width)
    if values.ndim != 4 or tuple(values.shape[1:]) != expected:
        raise DataError(f"series has shape {tuple(values.shape)}, model expects (T, {', '.join(map(str, expected))})")
    if time_features.shape != (values.shape[0], 2):
        raise DataError(f"time features have shape {tuple(time_features.shape)}, expected ({values.shape[0]}, 2)")
    if not 0 < train_end <= values.shape[0]:
        raise DataError(f"train_end {train_end} outside the series of {values.shape[0]} steps")
    weekday, slot = time_features[:, 0], time_features[:, 1]
    if weekday.min() < 0 or weekday.max() >= DAYS_PER_WEEK or slot.min() < 0 or slot.max() >= shape.slots_per_day:
        raise DataError(f"time features out of range: weekday must be 0..6 and slot 0..{shape.slots_per_day - 1}")


class _FittedFlag(ClassicalForecaster):
    """Keeps a persisted ``fitted`` flag so an unfitted model fails loudly instead of forecasting zeros."""

    def __init__(self, shape: ForecastShape, config: ModelConfig):
        super().__init__(shape, config)
        self.register_buffer("fitted", torch.tensor(False))

    def _require_fitted(self, name: str) -> None:
        if not bool(self.fitted):
            raise ConfigError(f"model {name!r} is not fitted: call fit_series (or load a fitted checkpoint) first")


# ---------------------------------------------------------------- persistence


@dataclass(frozen=True)
class PersistenceConfig(ModelConfig):
    """Persistence has no options."""


@register_model("last", PersistenceConfig)
class Persistence(ClassicalForecaster):
    """Last value: repeats the last history frame for every future step; in a series with gaps,
    each cell's last observed history value (the gap rule's fill where the history observed none)."""

    def __init__(self, shape: ForecastShape, config: PersistenceConfig):
        super().__init__(shape, config)

    def fit_series(self, values: np.ndarray, time_features: np.ndarray, train_end: int) -> None:
        """Persistence learns nothing from the training split."""

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        last_frame = batch["x"][:, -1:].float()
        observed = batch.get("x_observed")
        if observed is not None:
            steps = torch.arange(observed.shape[1], device=observed.device).view(1, -1, *([1] * (observed.ndim - 2)))
            latest = torch.where(observed, steps, -1).amax(dim=1, keepdim=True)
            carried = batch["x"].float().gather(1, latest.clamp(min=0))
            last_frame = torch.where(latest >= 0, carried, last_frame)
        return {"forecast": last_frame.expand(-1, self.shape.horizon, -1, -1, -1).contiguous()}


# ---------------------------------------------------------- historical average


@dataclass(frozen=True)
class HistoricalAverageConfig(ModelConfig):
    """Historical averages have no options: the period is the model's name, slots come from the shape."""


class _SlotAverage(_FittedFlag):
    """Mean of the training split per (periodic slot, channel, cell), looked up by each future step's slot.

    Slots the training split never observed in a cell hold the cell's overall training mean (a
    cell never observed: the mean of all observed training values), so the table is complete and
    ``forward`` is a plain gather. Missing values (NaN) count in no mean.
    """

    name: str

    def __init__(self, shape: ForecastShape, config: HistoricalAverageConfig):
        super().__init__(shape, config)
        table_shape = (self.slots_per_period(), shape.channels, shape.height, shape.width)
        self.register_buffer("average", torch.zeros(table_shape))

    def slots_per_period(self) -> int:
        raise NotImplementedError

    def slot_index(self, weekday, slot_of_day):
        """Index into the table from weekday and slot of day (numpy arrays or tensors)."""
        raise NotImplementedError

    def fit_series(self, values: np.ndarray, time_features: np.ndarray, train_end: int) -> None:
        _check_series(self.shape, values, time_features, train_end)
        training = np.asarray(values[:train_end], dtype=np.float64)
        observed = ~np.isnan(training)
        if not observed.any():
            raise DataError(f"the training split (steps 0..{train_end - 1}) has no observed value")
        training = np.where(observed, training, 0.0)
        slots = self.slot_index(time_features[:train_end, 0], time_features[:train_end, 1])
        sums = np.zeros((self.slots_per_period(),) + training.shape[1:])
        np.add.at(sums, slots, training)
        counts = np.zeros(sums.shape, dtype=np.int64)
        np.add.at(counts, slots, observed)
        cell_counts = observed.sum(axis=0)
        cell_means = np.where(cell_counts > 0, training.sum(axis=0) / np.maximum(cell_counts, 1),
                              training.sum() / cell_counts.sum())
        table = np.where(counts > 0, sums / np.maximum(counts, 1), cell_means)
        self.average.copy_(torch.from_numpy(table))
        self.fitted.fill_(True)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self._require_fitted(self.name)
        future_time = batch["y_time"].to(self.average.device)
        slots = self.slot_index(future_time[..., 0], future_time[..., 1])
        return {"forecast": self.average[slots]}


@register_model("ha-day", HistoricalAverageConfig)
class HistoricalAverageDay(_SlotAverage):
    """Historical average of the same slot of day over the training split."""

    name = "ha-day"

    def slots_per_period(self) -> int:
        return self.shape.slots_per_day

    def slot_index(self, weekday, slot_of_day):
        return slot_of_day


@register_model("ha-week", HistoricalAverageConfig)
class HistoricalAverageWeek(_SlotAverage):
    """Historical average of the same slot of week (weekday x slot of day) over the training split."""

    name = "ha-week"

    def slots_per_period(self) -> int:
        return DAYS_PER_WEEK * self.shape.slots_per_day

    def slot_index(self, weekday, slot_of_day):
        return weekday * self.shape.slots_per_day + slot_of_day


# ---------------------------------------------------------------------- ARIMA


@dataclass(frozen=True)
class ARIMAConfig(ModelConfig):
    """Per-cell ARIMA options.

    (2, 0, 1) with a constant: on BikeNYC new-flow (validation MAE of 6-step forecasts,
    six cells from busiest to empty) it beat (1,0,0), (1,0,1), (1,1,1), (2,1,1) and
    matched (2,0,2) and (3,0,1) within 1% while fitting faster.
    """

    order: tuple[int, int, int] = (2, 0, 1)
    #: statsmodels trend: "c" (constant, only without differencing) or "n" (none).
    trend: str = "c"
    #: worker processes fitting cells in parallel (each runs BLAS on one thread).
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)

    def validate(self) -> None:
        super().validate()
        order = tuple(self.order)
        if len(order) != 3 or any(not isinstance(term, int) or term < 0 for term in order):
            raise ConfigError(f"arima order must be three non-negative integers (p, d, q), got {self.order!r}")
        if self.trend not in ("n", "c"):
            raise ConfigError(f"arima trend must be 'n' or 'c', got {self.trend!r}")
        if self.trend == "c" and order[1] > 0:
            raise ConfigError("arima trend 'c' needs d = 0 (differencing removes a constant); use trend 'n'")
        if self.workers < 1:
            raise ConfigError(f"arima workers must be at least 1, got {self.workers}")


def origin_forecasts(filter_results, horizon: int) -> np.ndarray:
    """Forecasts of steps 1..horizon from every origin t, as an array (T, horizon).

    Uses statsmodels' state space ``y_t = d + Z a_t``, ``a_{t+1} = c + T a_t``: from the
    filtered state ``a_{t|t}`` (data up to t only), ``y_{t+h|t} = d + Z T^{h-1}(c + T a_{t|t})``,
    for all origins at once.
    """
    matrices = {}
    for name in ("design", "obs_intercept", "transition", "state_intercept"):
        matrix = np.asarray(getattr(filter_results, name))
        if np.ptp(matrix, axis=-1).max(initial=0.0) != 0:
            raise ConfigError("ARIMA origin forecasts need a time-invariant state-space model")
        matrices[name] = matrix[..., 0]
    state = filter_results.filtered_state  # (k_states, T)
    steps = []
    for _ in range(horizon):
        state = matrices["state_intercept"][:, None] + matrices["transition"] @ state
        steps.append(matrices["obs_intercept"][0] + matrices["design"][0] @ state)
    return np.stack(steps, axis=1)


def fit_cell_forecasts(series: np.ndarray, train_end: int, order: tuple[int, int, int], trend: str, horizon: int,
                       unobserved: float = 0.0) -> np.ndarray:
    """Fit ARIMA on ``series[:train_end]``, filter the whole series with those parameters, forecast from every origin.

    A training series without variation has nothing to fit (statsmodels would spend time
    on a degenerate likelihood): its forecast is that constant at every origin. Missing values
    (NaN) are left to statsmodels' Kalman filter, which steps over them; a cell with no observed
    training value forecasts ``unobserved`` (the mean of every observed training value).
    """
    series = np.asarray(series, dtype=np.float64)
    training = series[:train_end]
    observed = training[~np.isnan(training)]
    if observed.size == 0:
        return np.full((len(series), horizon), unobserved, dtype=np.float32)
    if np.ptp(observed) == 0:
        return np.full((len(series), horizon), observed[0], dtype=np.float32)
    from statsmodels.tsa.arima.model import ARIMA  # heavy import, kept to the processes that fit

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings are routine for per-cell ARMA fits
        # Only the parameters are needed: skipping the covariance and the stored filter
        # output makes the fit ~40% faster with identical forecasts.
        results = ARIMA(training, order=order, trend=trend).fit(cov_type="none", low_memory=True)
        filtered = results.apply(series).filter_results
    return origin_forecasts(filtered, horizon).astype(np.float32)


@register_model("arima", ARIMAConfig)
class PerCellARIMA(_FittedFlag):
    """ARIMA per cell and channel, fitted on the training split, forecasting from every origin.

    Parameters come from the training split only; the fitted model then filters the whole
    series once, so the forecast at an origin uses data up to that origin and no refit.
    The forecasts of every origin form the buffer ``forecast_table`` (T, Q, C, H, W),
    looked up by each window's last history index: the model forecasts only the series it
    was fitted on.
    """

    fitted_by = "maximum likelihood per cell"

    def __init__(self, shape: ForecastShape, config: ARIMAConfig):
        super().__init__(shape, config)
        self.order = tuple(config.order)
        self.register_buffer("forecast_table", torch.zeros(0, shape.horizon, shape.channels, shape.height, shape.width))

    def fit_series(self, values: np.ndarray, time_features: np.ndarray, train_end: int) -> None:
        _check_series(self.shape, values, time_features, train_end)
        steps = values.shape[0]
        cells = np.asarray(values, dtype=np.float64).reshape(steps, -1).T  # one row per (channel, cell)
        if np.isnan(cells[:, :train_end]).all():
            raise DataError(f"the training split (steps 0..{train_end - 1}) has no observed value")
        fit = partial(fit_cell_forecasts, train_end=train_end, order=self.order, trend=self.config.trend,
                      horizon=self.shape.horizon, unobserved=float(np.nanmean(cells[:, :train_end])))
        per_cell = map_in_processes(fit, cells, len(cells), self.config.workers, preload=(STATSMODELS_ARIMA,))
        table = np.stack(per_cell, axis=-1).reshape(steps, self.shape.horizon, *values.shape[1:])
        self.forecast_table = torch.from_numpy(table).to(self.forecast_table.device)
        self.fitted.fill_(True)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """The table's length is the fitted series' length: take it from the checkpoint."""
        stored = state_dict.get(prefix + "forecast_table")
        if stored is not None:
            self.forecast_table = torch.empty_like(stored, device=self.forecast_table.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self._require_fitted("arima")
        origin = (batch["start"] + batch["x"].shape[1] - 1).to(self.forecast_table.device)
        if int(origin.max()) >= self.forecast_table.shape[0] or int(origin.min()) < 0:
            raise DataError(
                f"window origin {int(origin.max())} outside the {self.forecast_table.shape[0]}-step series arima was fitted on"
            )
        return {"forecast": self.forecast_table[origin]}


# ------------------------------------------------------ seasonal linear autoregression


SEASONALITIES = ("none", "day", "week")


@dataclass(frozen=True)
class LinearARConfig(ModelConfig):
    """Options of the seasonal linear autoregression; the two switches turn it into the information a
    channel-independent model (PatchTST's view: one map for every cell, no clock) has."""

    #: Each (channel, cell) its own map; False: one map fitted on every cell's windows at once.
    per_cell: bool = True
    #: Intercepts per future step by the origin's slot: "week" (weekday x slot of day), "day" (slot of day) or
    #: "none" (one intercept). "week" had the lower validation RMSE on bikenyc1-60d, bikenyc1 and taxinyc1
    #: (6.59 / 5.83 / 15.75 against 8.26 / 7.66 / 21.51 for "day": docs/results).
    seasonality: str = "week"
    #: Ridge penalty on the normal equations, relative to the mean squared feature: keeps slots or cells
    #: with few windows solvable.
    ridge: float = 1e-3

    def validate(self) -> None:
        super().validate()
        if self.ridge < 0:
            raise ConfigError(f"linear-ar ridge must be >= 0, got {self.ridge}")
        if self.seasonality not in SEASONALITIES:
            raise ConfigError(f"linear-ar seasonality must be one of {', '.join(SEASONALITIES)}, got {self.seasonality!r}")


@register_model("linear-ar", LinearARConfig)
class LinearAR(_FittedFlag):
    """Seasonal linear autoregression: every future step a least-squares combination of the P history
    values of the same cell plus an intercept for the origin's slot (of day or of week), fitted on the training
    windows.

    The classical counterpart of the learned models: ARIMA's own-cell dynamics plus ha-week's profile, in
    one closed-form fit (a fraction of a second on the registered grids). Training windows with a missing
    value in their history or target are left out of that cell's fit; a cell with no complete window
    forecasts the mean of every observed training value, as the historical averages do.
    """

    fitted_by = "least squares per cell"

    def __init__(self, shape: ForecastShape, config: LinearARConfig):
        super().__init__(shape, config)
        maps = shape.channels * shape.height * shape.width if config.per_cell else 1
        slots = {"none": 1, "day": shape.slots_per_day, "week": DAYS_PER_WEEK * shape.slots_per_day}[config.seasonality]
        self.register_buffer("lag_weights", torch.zeros(maps, shape.history, shape.horizon))
        self.register_buffer("intercepts", torch.zeros(maps, slots, shape.horizon))
        if not config.per_cell:
            self.fitted_by = "least squares over all cells"

    def _origin_slots(self, origin_time):
        """Row of ``intercepts`` for each origin's (weekday, slot of day) time features (numpy array or tensor)."""
        if self.config.seasonality == "none":
            return origin_time[..., 1] * 0
        if self.config.seasonality == "day":
            return origin_time[..., 1]
        return origin_time[..., 0] * self.shape.slots_per_day + origin_time[..., 1]

    def _design(self, history: np.ndarray, origin_slots: np.ndarray) -> np.ndarray:
        """(windows, P + slots) features: the history, then the one-hot slot of the origin."""
        return np.concatenate([history, np.eye(self.intercepts.shape[1])[origin_slots]], axis=1)

    def _solve(self, design: np.ndarray, targets: np.ndarray, unobserved: float) -> np.ndarray:
        """(P + slots, Q) coefficients from the complete windows; without one, ``unobserved`` at every slot."""
        usable = ~(np.isnan(design).any(axis=1) | np.isnan(targets).any(axis=1))
        design, targets = design[usable], targets[usable]
        if not usable.any():
            history = self.shape.history
            return np.concatenate([np.zeros((history, targets.shape[1])),
                                   np.full((design.shape[1] - history, targets.shape[1]), unobserved)])
        gram = design.T @ design / len(design)
        penalty = self.config.ridge * max(float(np.trace(gram)) / len(gram), 1e-12)
        # lstsq: without a ridge, a slot no training window reached leaves the system singular (its intercept stays 0)
        return np.linalg.lstsq(gram + penalty * np.eye(len(gram)), design.T @ targets / len(design), rcond=None)[0]

    def fit_series(self, values: np.ndarray, time_features: np.ndarray, train_end: int) -> None:
        _check_series(self.shape, values, time_features, train_end)
        history, horizon = self.shape.history, self.shape.horizon
        windows = train_end - history - horizon + 1
        if windows < 1:
            raise DataError(f"the training split ({train_end} steps) holds no window of {history} + {horizon} steps")
        cells = np.asarray(values[:train_end], dtype=np.float64).reshape(train_end, -1)
        if np.isnan(cells).all():
            raise DataError(f"the training split (steps 0..{train_end - 1}) has no observed value")
        unobserved = float(np.nanmean(cells))
        starts = np.arange(windows)
        past = cells[starts[:, None] + np.arange(history)]  # (windows, P, cells)
        future = cells[starts[:, None] + history + np.arange(horizon)]  # (windows, Q, cells)
        origin_slots = self._origin_slots(time_features[starts + history - 1])
        if self.config.per_cell:
            solved = [self._solve(self._design(past[:, :, c], origin_slots), future[:, :, c], unobserved)
                      for c in range(cells.shape[1])]
        else:  # every cell's windows in one fit
            stacked = lambda array: array.transpose(2, 0, 1).reshape(-1, array.shape[1])  # noqa: E731
            design = self._design(stacked(past), np.tile(origin_slots, cells.shape[1]))
            solved = [self._solve(design, stacked(future), unobserved)]
        coefficients = torch.from_numpy(np.stack(solved)).float()  # (maps, P + slots, Q)
        self.lag_weights.copy_(coefficients[:, :history])
        self.intercepts.copy_(coefficients[:, history:])
        self.fitted.fill_(True)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self._require_fitted("linear-ar")
        history = batch["x"].float()
        batch_size = history.shape[0]
        past = history.reshape(batch_size, self.shape.history, -1)  # (B, P, cells)
        forecast = torch.einsum("bpc,cpq->bcq", past, self.lag_weights.expand(past.shape[-1], -1, -1))
        slots = self._origin_slots(batch["x_time"][:, -1].to(self.intercepts.device))
        forecast = forecast + self.intercepts[:, slots].transpose(0, 1)  # (B, maps, Q), maps broadcast over cells
        return {"forecast": forecast.transpose(1, 2).reshape(batch_size, self.shape.horizon, *history.shape[2:])}
