"""Gaps through training and evaluation: masked losses (ST-VFM's flow included), classical baselines
that skip missing values, masked metrics with their counts, a series with an outage end to end, and
series without gaps giving exactly the figures they always gave."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from stvfm.backbones import create_backbone
from stvfm.data.series import GridSeries
from stvfm.data.sources.generic import read_generic, save_generic_npz
from stvfm.data.windows import time_features
from stvfm.errors import DataError
from stvfm.ledger import build_record, read_records, record_name
from stvfm.models import create_model
from stvfm.models.stvfm import STVFM, STVFMConfig, flow_target_observed
from stvfm.shape import ForecastShape
from stvfm.testing import make_batch, write_synthetic_city
from stvfm.training.config import RunConfig
from stvfm.training.inference import predict
from stvfm.training.metrics import ForecastMetrics
from stvfm.training.runner import fit
from stvfm.training.scoring import score

SHAPE = ForecastShape(history=6, horizon=6, channels=1, height=6, width=4, slots_per_day=24)
TINY_STVFM = {"backbone": "tiny", "weights": "random", "temporal_dim": 16, "temporal_heads": 2,
              "encoder_layers": 1, "decoder_layers": 1}


def tiny_stvfm() -> STVFM:
    torch.manual_seed(0)
    backbone = create_backbone("tiny", weights="random")
    return STVFM(SHAPE, STVFMConfig(temporal_dim=16, temporal_heads=2, encoder_layers=1, decoder_layers=1,
                                    dropout=0.0), backbone=backbone)


def masked(batch: dict, x_observed: torch.Tensor, y_observed: torch.Tensor) -> dict:
    return {**batch, "x_observed": x_observed, "y_observed": y_observed}


# ------------------------------------------------------------------ losses


@pytest.mark.parametrize("name", ["stid", "stvfm", "tau"])
def test_an_all_observed_mask_gives_the_unmasked_loss_bit_for_bit(name):
    batch = make_batch(SHAPE, batch_size=2)
    model = tiny_stvfm() if name == "stvfm" else create_model(name, SHAPE)
    model.eval()
    with torch.no_grad():
        outputs = model(batch)
        plain = model.loss(batch, outputs)
        ones = masked(batch, torch.ones_like(batch["x"], dtype=torch.bool), torch.ones_like(batch["y"], dtype=torch.bool))
        with_mask = model.loss(ones, outputs)
    assert plain.keys() == with_mask.keys()
    for term in plain:
        assert torch.equal(plain[term], with_mask[term]), term


def test_stvfm_losses_ignore_unobserved_targets_and_flow_needs_both_frames():
    batch = make_batch(SHAPE, batch_size=2)
    x_observed = torch.ones_like(batch["x"], dtype=torch.bool)
    y_observed = torch.ones_like(batch["y"], dtype=torch.bool)
    y_observed[0, 2, 0, 3, 1] = False  # one missing target: flow targets 2 (y2 - y1) and 3 (y3 - y2) lose a frame
    x_observed[1, -1, 0, 0, 0] = False  # a missing last history frame: flow target 0 (y0 - x5) loses it
    flow_observed = flow_target_observed(x_observed, y_observed)
    assert (~flow_observed).sum() == 3
    assert not flow_observed[0, 2, 0, 3, 1] and not flow_observed[0, 3, 0, 3, 1] and not flow_observed[1, 0, 0, 0, 0]

    model = tiny_stvfm().eval()
    with torch.no_grad():
        outputs = model(batch)
        before = model.loss(masked(batch, x_observed, y_observed), outputs)
        disturbed = {**batch, "y": batch["y"].clone()}
        disturbed["y"][0, 2, 0, 3, 1] = 1e6  # what a filled placeholder holds cannot matter
        after = model.loss(masked(disturbed, x_observed, y_observed), outputs)
        unmasked = model.loss(disturbed, outputs)
    for term in ("loss", "mse_st", "mse_flow"):
        assert torch.equal(before[term], after[term]), term
    assert unmasked["mse_st"] > 1e6
    squared = (outputs["forecast"] - batch["y"]) ** 2
    assert before["mse_st"] == pytest.approx(float(squared[y_observed].mean()), rel=1e-6)


# ----------------------------------------------------------------- metrics


def test_metrics_count_observed_targets_only_and_report_the_counts():
    rng = np.random.default_rng(0)
    prediction, target = (torch.from_numpy(rng.uniform(-1, 1, (5, 3, 1, 4, 2))) for _ in range(2))
    observed = torch.from_numpy(rng.uniform(size=target.shape) > 0.3)
    observed[:, 1] = False  # no target of step 2 observed
    metric = ForecastMetrics(lambda v: v * 10, horizon=3)
    metric.update(prediction, target, observed)
    result = metric.compute()
    error = (prediction.clamp(-1, 1) * 10 - target * 10).numpy()
    kept = observed.numpy()
    assert result["mae"] == pytest.approx(np.abs(error[kept]).mean(), rel=1e-12)
    assert result["rmse"] == pytest.approx(np.sqrt((error[kept] ** 2).mean()), rel=1e-12)
    assert result["n_points"] == kept.sum() and result["n_targets"] == error.size
    assert result["per_horizon"]["n_points"] == kept.sum(axis=(0, 2, 3, 4)).tolist()
    assert result["per_horizon"]["mae"][1] is None
    assert result["per_horizon"]["mae"][2] == pytest.approx(np.abs(error[:, 2][kept[:, 2]]).mean(), rel=1e-12)

    plain, ones = ForecastMetrics(lambda v: v * 10, horizon=3), ForecastMetrics(lambda v: v * 10, horizon=3)
    plain.update(prediction, target)
    ones.update(prediction, target, torch.ones_like(observed))
    assert plain.compute() == ones.compute()  # bit for bit


# -------------------------------------------------------------- classical


def gappy_series_values(steps: int = 24 * 21) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    values = rng.uniform(0, 1, (steps, 1, 6, 4)).astype(np.float32)
    values[rng.uniform(size=values.shape) < 0.2] = np.nan
    times = np.datetime64("2024-01-01T00", "s") + np.arange(steps) * np.timedelta64(3600, "s")
    return values, time_features(times, 60)


def test_historical_average_averages_observed_values_only():
    values, features = gappy_series_values()
    model = create_model("ha-week", SHAPE)
    model.fit_series(values, features, train_end=24 * 14)
    slots = features[:24 * 14, 0] * 24 + features[:24 * 14, 1]
    values = values.astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a slot never observed: NaN, replaced below
        expected = np.stack([np.nanmean(values[:24 * 14][slots == slot], axis=0) for slot in range(7 * 24)])
    unobserved = np.isnan(expected)  # a slot missing in both training weeks: the cell's training mean
    assert unobserved.any()
    expected = np.where(unobserved, np.nanmean(values[:24 * 14], axis=0), expected)
    np.testing.assert_allclose(model.average.numpy(), expected, rtol=1e-6)  # the table is float32


def test_persistence_repeats_each_cells_last_observed_history_value():
    batch = make_batch(SHAPE, batch_size=1)
    observed = torch.ones_like(batch["x"], dtype=torch.bool)
    observed[0, 3:, 0, 2, 1] = False  # cell (2, 1) last observed at history step 3
    observed[0, :, 0, 0, 0] = False  # cell (0, 0) never observed: the filled last frame
    forecast = create_model("last", SHAPE)({**batch, "x_observed": observed})["forecast"]
    assert torch.equal(forecast[0, :, 0, 2, 1], batch["x"][0, 2, 0, 2, 1].expand(6))
    assert torch.equal(forecast[0, :, 0, 0, 0], batch["x"][0, 5, 0, 0, 0].expand(6))
    assert torch.equal(forecast[0, :, 0, 4, 3], batch["x"][0, 5, 0, 4, 3].expand(6))


def test_arima_steps_over_missing_values():
    values, features = gappy_series_values(steps=24 * 5)
    values = values[:, :, :1, :2]  # two cells keep it fast
    values[:40, 0, 0, 1] = np.nan  # one cell with a long outage at the start
    model = create_model("arima", ForecastShape(channels=1, height=1, width=2, slots_per_day=24), workers=1)
    model.fit_series(values, features, train_end=80)
    assert torch.isfinite(model.forecast_table).all()


# ------------------------------------------------------ a series with an outage


@pytest.fixture(scope="module")
def outage_city(tmp_path_factory) -> Path:
    """20 hourly days of a 5x3 city with a one-day outage in training and a cell outage in the test split."""
    folder = tmp_path_factory.mktemp("outage")
    series = read_generic(write_synthetic_city(folder / "city.npz"))
    values = series.values.copy()
    values[100:124] = np.nan
    values[420:430, 0, 1, 1] = np.nan
    values[450, 0, 4, 2] = np.nan
    return save_generic_npz(GridSeries("outage", values, series.timestamps, 60, series.channel_names),
                            folder / "outage.npz")


@pytest.mark.parametrize(("model", "options"), [("ha-week", {}), ("stid", {}), ("stvfm", TINY_STVFM)])
def test_a_series_with_an_outage_trains_and_tests_with_masked_metrics(outage_city, tmp_path, model, options):
    config = RunConfig(model=model, dataset=str(outage_city), out=str(tmp_path / model), model_options=options,
                       max_epochs=1, batch_size=32, progress=False, accelerator="cpu")
    metrics = fit(config)
    saved = np.load(tmp_path / model / "predictions.npz")
    target = saved["target"].astype(np.float64)
    observed = ~np.isnan(target)
    # test steps 408..479; missing targets: 10 of cell (1, 1) and 1 of cell (4, 2), each in up to 6 windows
    assert metrics["protocol_card"]["n_targets"] == target.size == 61 * 6 * 15
    assert metrics["n_points"] == observed.sum() == target.size - 6 * 10 - 6
    assert metrics["protocol_card"]["n_scored"] == metrics["n_points"]
    assert metrics["protocol_card"]["windows_with_history_gaps"] == 10 + 5 + 6  # 415..429, 445..450
    assert metrics["protocol_card"]["gap_fill"] == "last" and metrics["protocol_card"]["masking"] == "missing"
    error = saved["prediction"].astype(np.float64) - target
    assert np.isfinite(saved["prediction"]).all()
    assert metrics["mae"] == pytest.approx(np.abs(error[observed]).mean(), rel=1e-6)
    assert metrics["rmse"] == pytest.approx(np.sqrt((error[observed] ** 2).mean()), rel=1e-6)
    if model != "ha-week":
        with open(tmp_path / model / "logs" / "metrics.csv") as handle:
            losses = [float(row["train/loss_epoch"]) for row in csv.DictReader(handle) if row.get("train/loss_epoch")]
        assert losses and np.isfinite(losses).all()
    rescored = score(tmp_path / model)
    assert rescored["mae"] == pytest.approx(metrics["mae"], rel=1e-6) and rescored["n_points"] == metrics["n_points"]
    assert build_record(tmp_path / model)["protocol_card"] == metrics["protocol_card"]  # ledger records carry it


def test_predict_fills_a_gap_in_its_input_by_the_runs_rule(outage_city, tmp_path):
    fit(RunConfig(model="stid", dataset=str(outage_city), out=str(tmp_path / "run"), max_epochs=1, batch_size=32,
                  progress=False, accelerator="cpu"))
    series = read_generic(outage_city)
    values = series.values.copy()
    values[-2, 0, 3, 1] = np.nan  # a gap in the history the forecast reads
    gappy = save_generic_npz(GridSeries("latest", values, series.timestamps, 60, series.channel_names),
                             tmp_path / "latest.npz")
    checkpoint = tmp_path / "run" / "checkpoints" / "best.ckpt"
    forecast = predict(checkpoint, gappy, tmp_path / "forecast.npz", accelerator="cpu")
    assert forecast.values.shape == (6, 1, 5, 3) and np.isfinite(forecast.values).all()
    skipping = tmp_path / "skip" / "best.ckpt"
    skipping.parent.mkdir()
    saved = torch.load(checkpoint, weights_only=True)
    saved["stvfm"]["run"]["gap_fill"] = "skip"
    torch.save(saved, skipping)
    with pytest.raises(DataError, match="latest.npz.*'skip'"):
        predict(skipping, gappy, tmp_path / "forecast.npz", accelerator="cpu")


def test_skip_leaves_out_windows_whose_history_has_gaps(outage_city, tmp_path):
    metrics = fit(RunConfig(model="ha-week", dataset=str(outage_city), out=str(tmp_path), gap_fill="skip",
                            progress=False, accelerator="cpu"))
    assert metrics["n_windows"] == 61 - 21 and metrics["protocol_card"]["gap_fill"] == "skip"
    assert json.loads((tmp_path / "metrics.json").read_text())["settings"]["gap_fill"] == "skip"


# ---------------------------------------------------- no gaps: today's figures


def test_a_no_gap_run_forced_through_the_masked_path_equals_the_plain_run_bit_for_bit(tmp_path, monkeypatch):
    city = write_synthetic_city(tmp_path / "city.npz", days=20, height=5, width=3)

    def run(out: str) -> tuple[dict, list[dict]]:
        metrics = fit(RunConfig(model="stid", dataset=str(city), out=str(tmp_path / out), max_epochs=2,
                                batch_size=32, progress=False, accelerator="cpu"))
        with open(tmp_path / out / "logs" / "metrics.csv") as handle:
            return metrics, list(csv.DictReader(handle))

    plain, plain_log = run("plain")
    monkeypatch.setattr(GridSeries, "has_gaps", property(lambda self: True))  # every window carries all-True masks
    forced, forced_log = run("forced")
    for key in ("mae", "rmse", "per_horizon", "n_points", "n_windows", "best_val_score"):
        assert forced[key] == plain[key], key
    assert forced["protocol_card"]["windows_with_history_gaps"] == 0
    columns = [key for key in plain_log[0] if key.startswith(("train/", "val/"))]
    assert [[row[key] for key in columns] for row in forced_log] == [[row[key] for key in columns] for row in plain_log]


#: Test figures of the classical baselines on the shared datasets (default protocol), computed with the code
#: before gaps existed (main at eda640e, PYTHONPATH=/work/main/src, RunConfig(model, dataset, channel=0)).
BEFORE_GAPS = {
    ("bikenyc1", "last"): (8.141192825256741, 17.98112940527534),
    ("bikenyc1", "ha-day"): (3.8120699254740322, 8.827256774617892),
    ("bikenyc1", "ha-week"): (2.936191390116635, 6.69493574380559),
    ("taxinyc1", "last"): (11.678542956040866, 39.298892669329646),
    ("taxinyc1", "ha-day"): (9.163815986558955, 30.227540317094874),
    ("taxinyc1", "ha-week"): (5.319117657726179, 15.873643089470308),
}


@pytest.mark.parametrize(("dataset", "model"), sorted(BEFORE_GAPS))
def test_the_shared_datasets_classical_figures_are_unchanged_bit_for_bit(shared_data_dir, tmp_path, dataset, model):
    metrics = fit(RunConfig(model=model, dataset=dataset, out=str(tmp_path), channel=0, progress=False,
                            accelerator="cpu", data_root=str(shared_data_dir)))
    assert (metrics["mae"], metrics["rmse"]) == BEFORE_GAPS[dataset, model]
    card = metrics["protocol_card"]
    assert metrics["n_points"] == card["n_scored"] == card["n_targets"] and card["windows_with_history_gaps"] == 0


def test_the_gap_rule_at_its_default_leaves_every_committed_ledger_record_its_name():
    ledger = Path(__file__).resolve().parents[2] / "docs" / "results" / "ledger"
    records = read_records([ledger])
    assert records and all(Path(record["ledger_file"]).stem == record_name(record) for record in records)
    record = records[0]
    skipping = {**record, "settings": {**record["settings"], "gap_fill": "skip"}}
    assert record_name(skipping) != record_name(record)  # another rule is another result
