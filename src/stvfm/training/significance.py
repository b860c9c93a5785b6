"""Whether one run's test errors are lower than another's by more than the test windows' own noise: the
Diebold-Mariano test on the two runs' per-window MSE (``scoring.window_errors``), scored on the same windows.

Stride-1 windows overlap (neighbours share target steps) and errors follow the day's cycle, so the loss
differential is autocorrelated: its variance is the Newey-West (HAC, Bartlett kernel) estimate over one
day of lags, and the statistic is read on the t distribution, as Harvey, Leybourne and Newbold advise for
short samples. It speaks of this test split only; another seed or another period is what the seed spread
and other datasets speak to.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from stvfm.data.series import slots_per_day
from stvfm.errors import DataError

#: Below this p-value the gap counts as beyond the test windows' noise.
SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class PairedTest:
    windows: int  # windows both runs scored
    lags: int  # of the HAC variance
    mean_difference: float  # mean per-window MSE of the second run minus the first's (positive: the first is lower)
    statistic: float
    p_value: float  # two-sided

    @property
    def verdict(self) -> str:
        """The first run ahead, behind, or not separated from the second on these windows."""
        if self.p_value >= SIGNIFICANCE:
            return "not separated"
        return "ahead" if self.mean_difference > 0 else "behind"

    def summary(self) -> str:
        """Gap, verdict and p, to three figures so a p just below the threshold never prints as it."""
        p_value = "p < 0.001" if self.p_value < 0.001 else f"p {self.p_value:.3g}"
        return f"{self.mean_difference:+.2f}: {self.verdict} ({p_value})"


def day_lags(interval_minutes: int, windows: int) -> int:
    """One day of steps, and never more than a quarter of the windows (the HAC estimate needs many more
    windows than lags)."""
    day = slots_per_day(interval_minutes) if interval_minutes > 0 else 1
    return max(1, min(day, windows // 4))


def per_window_problem(per_window: Any) -> str | None:
    """What is wrong with a ``per_window`` entry read from a file (None: nothing), so a hand-edited or
    truncated one is named as such and never reaches a test."""
    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    if not (isinstance(per_window, dict) and isinstance(per_window.get("first_step_time"), str)
            and isinstance(per_window.get("interval_minutes"), int) and isinstance(per_window.get("mse"), list)
            and all(value is None or number(value) for value in per_window["mse"])):
        return "per_window is not {first_step_time: text, interval_minutes: whole number, mse: [numbers or null]}"
    return None


def scored_windows(per_window: dict[str, Any]) -> tuple[str, int, int]:
    """What names the windows a run's ``per_window`` errors were scored on: two runs pair only where it is equal."""
    return per_window["first_step_time"], per_window["interval_minutes"], len(per_window["mse"])


def paired_window_test(first: dict[str, Any], second: dict[str, Any]) -> PairedTest:
    """``paired_test`` on two runs' kept per-window errors (``scoring.window_errors``), over one day of lags;
    runs scored on other windows (another span, dataset or protocol) cannot be paired."""
    if scored_windows(first) != scored_windows(second):
        raise DataError("scored on other test windows")
    return paired_test(first["mse"], second["mse"], day_lags(first["interval_minutes"], len(first["mse"])))


def paired_test(first: Sequence[float | None], second: Sequence[float | None], lags: int) -> PairedTest:
    """Diebold-Mariano on two runs' losses over the same windows, in window order (a window either run
    did not score, None, is left out)."""
    import statsmodels.api as sm  # loaded when a test is asked for

    if len(first) != len(second):
        raise DataError(f"a paired test needs the same windows: {len(first)} against {len(second)}")
    pairs = [(a, b) for a, b in zip(first, second, strict=True) if a is not None and b is not None]
    if len(pairs) < 8:
        raise DataError(f"a paired test needs at least 8 windows both runs scored, got {len(pairs)}")
    difference = np.array([b - a for a, b in pairs], dtype=np.float64)
    mean = float(difference.mean())
    if np.ptp(difference) == 0:  # no variance: the runs differ by a constant (or not at all) on every window
        statistic = 0.0 if mean == 0 else math.copysign(math.inf, mean)
        return PairedTest(len(pairs), lags, mean, statistic, 1.0 if mean == 0 else 0.0)
    fit = sm.OLS(difference, np.ones_like(difference)).fit(
        cov_type="HAC", cov_kwds={"maxlags": lags, "use_correction": True}, use_t=True)
    return PairedTest(len(pairs), lags, mean, float(fit.tvalues[0]), float(fit.pvalues[0]))
