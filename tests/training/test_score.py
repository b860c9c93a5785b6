"""``stvfm score``: a finished run's saved forecasts scored again under another masking rule or steps,
with the protocol card beside the figures, on folders of earlier versions too."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from stvfm.cli.main import main
from stvfm.errors import ConfigError, DataError
from stvfm.training.scoring import EARLIER_VERSIONS, NO_GAP_RULE, recorded_card, score

#: A run folder exactly as the code before protocol cards wrote it (see its README.md).
BEFORE_CARDS = Path(__file__).parent / "fixtures" / "run-before-cards"


@pytest.fixture
def old_run(tmp_path) -> Path:
    return Path(shutil.copytree(BEFORE_CARDS, tmp_path / "run"))


def numpy_scores(folder: Path, mask_below: float | None = None, steps: list[int] | None = None) -> dict:
    saved = np.load(folder / "predictions.npz")
    index = [step - 1 for step in steps] if steps else slice(None)
    prediction, target = saved["prediction"][:, index].astype(np.float64), saved["target"][:, index].astype(np.float64)
    kept = ~np.isnan(target) & (target >= mask_below if mask_below is not None else True)
    error = prediction - target
    per_step = [np.abs(error[:, step][kept[:, step]]).mean() for step in range(error.shape[1])]
    return {"mae": np.abs(error[kept]).mean(), "rmse": np.sqrt((error[kept] ** 2).mean()), "scored": int(kept.sum()),
            "per_step_mae": per_step, "targets": error.size}


def test_a_folder_from_before_cards_gets_the_card_of_its_defaults(old_run):
    metrics = json.loads((old_run / "metrics.json").read_text())
    assert "protocol_card" not in metrics
    card = recorded_card(metrics)
    assert card["source"] == EARLIER_VERSIONS and card["masking"] == "none" and card["gap_fill"] == NO_GAP_RULE
    assert card["scaler_fit_on"] == "train" and card["steps"] == [1, 2, 3, 4, 5, 6]
    assert card["n_scored"] == card["n_targets"] == metrics["n_points"] == 61 * 6 * 15


def test_rescoring_an_old_folder_under_its_own_rule_gives_its_recorded_figures(old_run):
    result = score(old_run)
    recorded = json.loads((old_run / "metrics.json").read_text())
    assert result["mae"] == pytest.approx(recorded["mae"], rel=1e-6)
    assert result["rmse"] == pytest.approx(recorded["rmse"], rel=1e-6)
    np.testing.assert_allclose(result["per_horizon"]["rmse"], recorded["per_horizon"]["rmse"], rtol=1e-6)
    assert result["n_points"] == recorded["n_points"] and result["protocol_card"]["masking"] == "missing"
    assert result["recorded"]["protocol_card"]["masking"] == "none"


def test_an_old_folder_scores_under_two_masking_rules(old_run):
    everything = score(old_run)
    below = score(old_run, mask_below=5, steps=[1, 3, 6])
    expected = numpy_scores(old_run, mask_below=5, steps=[1, 3, 6])
    assert below["mae"] == pytest.approx(expected["mae"], rel=1e-12)
    assert below["rmse"] == pytest.approx(expected["rmse"], rel=1e-12)
    np.testing.assert_allclose(below["per_horizon"]["mae"], expected["per_step_mae"], rtol=1e-12)
    card = below["protocol_card"]
    assert card["masking"] == "below" and card["mask_below"] == 5 and card["steps"] == [1, 3, 6]
    assert card["n_targets"] == expected["targets"] == 61 * 3 * 15
    assert card["n_scored"] == below["n_points"] == expected["scored"] < card["n_targets"]
    assert sum(card["n_scored_per_step"]) == card["n_scored"]
    assert card["scaler_fit_on"] == "train" and card["gap_fill"] == NO_GAP_RULE  # what the run itself did
    assert below["mae"] != everything["mae"]  # Poisson(4) counts: leaving out those below 5 changes the figure
    assert json.loads((old_run / "metrics.json").read_text()) == json.loads((BEFORE_CARDS / "metrics.json").read_text())


def test_the_cli_prints_the_card_beside_the_figures(old_run, capsys):
    code = main(["score", str(old_run), "--mask-below", "5", "--steps", "1,3,6"])
    out = capsys.readouterr().out
    assert code == 0
    expected = numpy_scores(old_run, mask_below=5, steps=[1, 3, 6])
    assert f"{expected['mae']:.4f}" in out and f"{expected['rmse']:.4f}" in out
    for text in ("protocol card", "this score", "as recorded", "below", "none", "t+3", "t+6", str(expected["scored"]),
                 "not recorded"):
        assert text in out, text
    assert "t+2" not in out


@pytest.mark.parametrize(("args", "message"), [
    (["--steps", "0,7"], "outside the run's forecast steps 1..6"),
    (["--steps", "one"], "--steps expects comma-separated"),
])
def test_bad_steps_are_one_line(old_run, capsys, args, message):
    code = main(["score", str(old_run), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_a_folder_without_predictions_says_so(old_run):
    (old_run / "predictions.npz").unlink()
    with pytest.raises(DataError, match="predictions.npz"):
        score(old_run)


def test_a_threshold_leaving_nothing_is_an_error(old_run):
    with pytest.raises(DataError, match="no observed target"):
        score(old_run, mask_below=1e9)
    with pytest.raises(ConfigError, match="finite"):
        score(old_run, mask_below=float("nan"))
