"""Per-window test errors and the paired (Diebold-Mariano) test on them: the per-window figures add back
up to the pooled ones, the test's statistic is the textbook one, and a report says what it cannot test."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from stvfm.errors import DataError
from stvfm.training.scoring import window_errors
from stvfm.training.significance import PairedTest, day_lags, paired_test


def newey_west_t(difference: np.ndarray, lags: int) -> float:
    """The DM statistic written out: mean over sqrt(Bartlett-weighted autocovariances / n), small-sample
    corrected by n / (n - 1)."""
    n, centred = len(difference), difference - difference.mean()
    variance = centred @ centred
    for lag in range(1, lags + 1):
        variance += 2 * (1 - lag / (lags + 1)) * (centred[lag:] @ centred[:-lag])
    return difference.mean() / np.sqrt(variance / n**2 * n / (n - 1))


def test_window_errors_weigh_back_into_the_pooled_figures_and_skip_missing_targets():
    rng = np.random.default_rng(0)
    prediction, target = rng.normal(size=(12, 6, 1, 4, 4)), rng.normal(size=(12, 6, 1, 4, 4))
    target[3, :2] = np.nan  # part of a window missing
    target[7] = np.nan  # a whole window missing
    start = rng.permutation(12)  # collected out of order
    first_step = np.array([f"2024-01-01T{hour:02d}:00:00" for hour in start + 12])
    errors = window_errors(prediction, target, start, first_step, 60)
    scored = ~np.isnan(target)
    error = (prediction - target)[scored]
    counts = np.array(errors["n_points"])
    assert errors["first_step_time"] == "2024-01-01T12:00:00" and errors["interval_minutes"] == 60
    missing = int(np.flatnonzero(np.sort(start) == start[7])[0])  # window 7 sits here in start order
    assert errors["mse"][missing] is None and errors["mae"][missing] is None and counts[missing] == 0
    kept = [i for i in range(12) if i != missing]
    mse, mae = np.array([errors["mse"][i] for i in kept]), np.array([errors["mae"][i] for i in kept])
    assert (mse * counts[kept]).sum() / counts.sum() == pytest.approx(np.mean(error**2), rel=1e-12)
    assert (mae * counts[kept]).sum() / counts.sum() == pytest.approx(np.mean(np.abs(error)), rel=1e-12)
    first = int(np.argmin(start))
    assert errors["mse"][0] == pytest.approx(np.mean((prediction[first] - target[first]) ** 2))


@pytest.mark.parametrize("lags", [0, 1, 5])
def test_the_statistic_is_the_newey_west_t_and_without_lags_the_paired_t_test(lags):
    rng = np.random.default_rng(1)
    first = rng.gamma(2.0, size=60)
    second = first + 0.3 + np.convolve(rng.normal(size=64), np.ones(5) / 5, mode="valid")  # autocorrelated gap
    test = paired_test(first.tolist(), second.tolist(), lags)
    difference = second - first
    assert test.windows == 60 and test.lags == lags
    assert test.mean_difference == pytest.approx(difference.mean())
    assert test.statistic == pytest.approx(newey_west_t(difference, lags), rel=1e-9)
    assert test.p_value == pytest.approx(2 * stats.t.sf(abs(test.statistic), df=59), rel=1e-9)
    if lags == 0:
        classic = stats.ttest_1samp(difference, 0.0)
        assert test.statistic == pytest.approx(classic.statistic) and test.p_value == pytest.approx(classic.pvalue)
    assert test.verdict == "ahead"  # second's losses are higher by 0.3 against noise of ~0.2 per window
    swapped = paired_test(second.tolist(), first.tolist(), lags)
    assert swapped.statistic == pytest.approx(-test.statistic) and swapped.p_value == pytest.approx(test.p_value)
    assert swapped.verdict == "behind"


def test_windows_either_run_missed_are_left_out_and_too_few_are_refused():
    rng = np.random.default_rng(2)
    first, second = rng.normal(size=20).tolist(), rng.normal(size=20).tolist()
    first[4], second[9] = None, None
    test = paired_test(first, second, 2)
    kept = [i for i in range(20) if i not in (4, 9)]
    assert test.windows == 18
    assert test.mean_difference == pytest.approx(np.mean([second[i] - first[i] for i in kept]))
    with pytest.raises(DataError, match="at least 8 windows"):
        paired_test(first[:7], second[:7], 1)
    with pytest.raises(DataError, match="same windows"):
        paired_test(first, second[:-1], 1)


def test_a_constant_gap_has_no_variance_and_is_judged_by_its_sign():
    same = paired_test([1.0] * 10, [1.0] * 10, 2)
    assert same.p_value == 1.0 and same.verdict == "not separated"
    assert paired_test([1.0] * 10, [1.5] * 10, 2).verdict == "ahead"
    assert PairedTest(10, 2, -0.5, -3.0, 0.01).verdict == "behind"
    assert PairedTest(10, 2, -0.5, -1.0, 0.3).verdict == "not separated"


def test_one_day_of_lags_but_never_more_than_a_quarter_of_the_windows():
    assert day_lags(60, 205) == 24 and day_lags(30, 205) == 48
    assert day_lags(30, 100) == 25 and day_lags(60, 9) == 2 and day_lags(60, 2) == 1


def test_the_report_tests_rows_window_by_window_where_both_kept_them():
    from stvfm.experiments.ledger_report import LedgerRow, render

    rng = np.random.default_rng(3)
    base = rng.gamma(4.0, size=40)

    def record(model, seed, losses, stop="epoch cap", start="2024-02-01T00:00:00"):
        kept = {"per_window": {"first_step_time": start, "interval_minutes": 60, "mse": list(losses),
                               "mae": list(losses), "n_points": [6] * len(losses)}} if losses is not None else {}
        return {"model": model, "stop_reason": stop, "rmse": float(np.sqrt(np.mean(losses if losses is not None else 1))),
                "mae": 1.0, "seed": seed, "epochs": 10, **kept}

    rows = [LedgerRow("stvfm", [record("stvfm", 0, base), record("stvfm", 1, base + 0.02), record("stvfm", 2, None)]),
            LedgerRow("ha-week", [record("ha-week", 0, base + 2.0 + rng.normal(0, 0.5, 40), stop="not trained")]),
            LedgerRow("tau", [record("tau", 0, base + rng.normal(0, 1.0, 40))]),
            LedgerRow("old", [record("old", 0, None)]),
            LedgerRow("other", [record("other", 0, base, start="2024-03-01T00:00:00")])]
    text = render(rows, "bikenyc1", 0, ["ledger"])
    verdicts = text[text.index("## stvfm against each row"):]
    line = next(line for line in verdicts.splitlines() if line.startswith("| ha-week |"))
    assert ": ahead (p < 0.001); stvfm on seeds 0, 1 only |" in line  # seed 2 kept no per-window errors
    tau = next(line for line in verdicts.splitlines() if line.startswith("| tau |"))
    assert "not separated" in tau
    assert "| old |" in verdicts and "per-window errors not recorded |" in verdicts
    assert "scored on other test windows" in verdicts
    assert "Diebold-Mariano" in verdicts


def test_a_p_value_just_below_the_threshold_never_prints_as_the_threshold():
    assert PairedTest(421, 48, 91.81, 1.97, 0.0496).summary() == "+91.81: ahead (p 0.0496)"
    assert PairedTest(205, 24, 9.71, 1.35, 0.1786).summary() == "+9.71: not separated (p 0.179)"
    assert PairedTest(205, 24, -30.4, -4.0, 0.00004).summary() == "-30.40: behind (p < 0.001)"
