"""The benchmark on a tiny model: every figure is there, positive and finite; the CLI writes the same JSON."""

from __future__ import annotations

import json
import math

import pytest
import torch

from stvfm.cli.main import main
from stvfm.errors import ConfigError
from stvfm.models import create_model
from stvfm.shape import ForecastShape
from stvfm.training.benchmark import (
    COMPILED_MODE,
    MODES,
    NATIVE_BF16_MODE,
    BenchmarkConfig,
    inference_against_baseline,
    read_baseline,
    run_benchmark,
)
from stvfm.training.speed import cast_frozen_linears

TINY = {"temporal_dim": 16, "temporal_heads": 2, "encoder_layers": 1, "decoder_layers": 1}
MODE_FIGURES = ("train_step_s", "first_train_step_s", "train_windows_per_s", "train_tflops", "train_utilisation", "inference_ms_per_window",
                "train_peak_rss_mib", "vit_fwd_bwd_s", "vit_tflops", "vit_utilisation")


def positive(value) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


def check_result(result: dict, datasets: tuple[str, ...], modes: tuple[str, ...] = MODES) -> None:
    assert positive(result["peak_tflops"]["fp32"]) and positive(result["peak_tflops"]["bf16"])
    # the ceiling is the higher of the peaks measured before and after the timed work
    measured = result["peak_tflops_measured"]
    for dtype in ("fp32", "bf16"):
        assert result["peak_tflops"][dtype] == max(measured["start"][dtype], measured["end"][dtype])
    for figures in result["datasets"].values():
        for mode, row in figures["modes"].items():
            peak = result["peak_tflops"]["fp32" if mode == "fp32" else "bf16"]
            assert math.isclose(row["train_utilisation"], row["train_tflops"] / peak)
    assert result["machine"]["threads"] >= 1 and result["machine"]["cpu"] and result["machine"]["torch"]
    assert set(result["datasets"]) == set(datasets)
    for name in datasets:
        figures = result["datasets"][name]
        assert positive(figures["train_step_gflop"]) and positive(figures["vit_fwd_bwd_gflop"])
        assert set(figures["modes"]) == set(modes)
        for mode in modes:
            row = figures["modes"][mode]
            for key in MODE_FIGURES:
                assert positive(row[key]), (name, mode, key, row[key])
            assert row["train_rss_increase_mib"] >= 0
        assert set(result["ratios"][name]) == {f"{mode}_over_fp32_train_throughput" for mode in modes[1:]}
        assert all(positive(value) for value in result["ratios"][name].values())
    # only what was measured: no placeholder, no epoch extrapolated from a step
    assert "accuracy_check" not in result and "bikenyc1_epoch_seconds" not in result
    targets = result["targets"]
    assert set(targets) == {"train_step_utilisation", "inference_speedup"}
    assert all(positive(target["value"]) and isinstance(target["met"], bool) for target in targets.values())
    fit_mode = NATIVE_BF16_MODE if result["bf16_native"] else "fp32"  # the mode `fit --precision auto` trains in
    assert targets["train_step_utilisation"]["mode"] == fit_mode
    assert targets["train_step_utilisation"]["value"] == min(
        result["datasets"][name]["modes"][fit_mode]["train_utilisation"] for name in datasets)
    assert targets["train_step_utilisation"]["met"] == (targets["train_step_utilisation"]["value"] >= 0.65)
    inference, baseline = result["inference_vs_baseline"], read_baseline(None)
    for name in datasets:
        row = inference["datasets"][name]
        assert row["ms_per_window"] == result["datasets"][name]["modes"]["fp32"]["inference_ms_per_window"]
        assert math.isclose(row["speedup"], baseline["inference_ms_per_window"][name] * baseline["peak_fp32_tflops"]
                            / (row["ms_per_window"] * result["peak_tflops"]["fp32"]))
    assert targets["inference_speedup"]["value"] == min(row["speedup"] for row in inference["datasets"].values())


def test_run_benchmark_reports_every_figure():
    config = BenchmarkConfig(backbone="tiny", weights="random", batch_size=4, steps=2, matmul_size=256,
                             matmul_repeats=2, model_options=TINY, timed_modes=MODES)
    result = run_benchmark(config)
    check_result(result, ("bikenyc1", "taxinyc1"))
    json.dumps(result)  # the CLI writes it as JSON


def test_the_compiled_backbone_mode_is_timed_when_asked_for(monkeypatch):
    """Compiling costs a minute cold: a stand-in records what the bench compiles. That the compiled backbone
    forecasts the same and trains under bf16 autocast is test_speed's compile test, the one that compiles."""
    from stvfm.training import benchmark

    compiled = []
    monkeypatch.setattr(benchmark, "compile_backbone", compiled.append)
    config = BenchmarkConfig(datasets=("bikenyc1",), backbone="tiny", weights="random", batch_size=2, steps=1,
                             warmup_steps=0, matmul_size=128, matmul_repeats=1, model_options=TINY,
                             compile_backbone=True, timed_modes=(*MODES, COMPILED_MODE))
    result = run_benchmark(config)
    check_result(result, ("bikenyc1",), modes=(*MODES, COMPILED_MODE))
    assert len(compiled) == 1  # that mode's own copy of the model, after its frozen linears went bf16
    assert {p.dtype for p in compiled[0].backbone.parameters() if not p.requires_grad} >= {torch.bfloat16}


@pytest.fixture
def quick_peaks(monkeypatch):
    """The CLI tests check wiring: the peak is still measured, on a small square for a fraction of a second."""
    from stvfm.training import benchmark

    monkeypatch.setattr(benchmark, "SLOW_MATMUL_SECONDS", 0.01)
    monkeypatch.setattr(benchmark, "PEAK_SECONDS", 0.05)


def test_cli_bench_writes_json(tmp_path, quick_peaks):
    out = tmp_path / "bench.json"
    code = main(["bench", "--datasets", "bikenyc1", "--batch-size", "2", "--steps", "2", "--backbone", "tiny",
                 "--weights", "random", "--modes", ",".join(MODES), "--out", str(out),
                 *(arg for key, value in TINY.items() for arg in ("--set", f"{key}={value}"))])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["config"]["backbone"] == "tiny" and result["config"]["datasets"] == ["bikenyc1"]
    check_result(result, ("bikenyc1",))


def test_where_bf16_is_emulated_only_fp32_is_timed_and_the_epoch_runs_in_fp32(monkeypatch, tmp_path):
    from stvfm import host

    monkeypatch.setattr(host, "cpu_flags", lambda: {"avx2", "fma"})
    config = BenchmarkConfig(datasets=("bikenyc1",), backbone="tiny", weights="random", batch_size=2, steps=1,
                             warmup_steps=0, matmul_size=128, matmul_repeats=1, model_options=TINY, accelerator="cpu")
    assert config.modes == ("fp32",) and config.epoch_precision == "32"
    result = run_benchmark(config)
    assert set(result["datasets"]["bikenyc1"]["modes"]) == {"fp32"} and not result["bf16_native"]
    assert set(result["targets"]) == {"train_step_utilisation", "inference_speedup"}
    assert result["targets"]["train_step_utilisation"]["mode"] == "fp32"  # what `fit --precision auto` trains in here
    monkeypatch.setattr(host, "cpu_flags", lambda: {"avx2", "avx512_bf16"})
    assert config.modes == MODES and config.epoch_precision == "bf16"
    with pytest.raises(ConfigError, match="must include fp32"):
        BenchmarkConfig(timed_modes=("bf16-autocast",))


def test_frozen_bf16_casts_only_the_frozen_linears():
    model = create_model("stvfm", ForecastShape(height=6, width=4), backbone="tiny", weights="random", **TINY)
    assert cast_frozen_linears(model, torch.bfloat16) > 0
    assert all(p.dtype == torch.float32 for p in model.backbone.adapters.parameters())
    assert all(p.dtype == torch.float32 for m in model.backbone.modules() if isinstance(m, torch.nn.LayerNorm) for p in m.parameters())
    assert {p.dtype for p in model.backbone.parameters() if not p.requires_grad} == {torch.bfloat16, torch.float32}


def test_inference_is_held_against_a_baseline_per_unit_of_its_own_runs_peak(tmp_path):
    recorded = read_baseline(None)  # the committed one: both shapes, before issue 24's work
    assert set(recorded["inference_ms_per_window"]) == {"bikenyc1", "taxinyc1"} and recorded["batch_size"] == 8
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps({"peak_tflops": {"fp32": 0.05}, "config": {"batch_size": 8},
                                   "datasets": {"bikenyc1": {"modes": {"fp32": {"inference_ms_per_window": 1000.0}}}}}))
    baseline = read_baseline(str(earlier))
    timed = {"bikenyc1": {"modes": {"fp32": {"inference_ms_per_window": 250.0}}},
             "taxinyc1": {"modes": {"fp32": {"inference_ms_per_window": 900.0}}}}
    rows = inference_against_baseline(timed, {"fp32": 0.1}, baseline)["datasets"]
    assert set(rows) == {"bikenyc1"}  # a dataset the baseline lacks is not compared
    # 4x faster as timed, but on a reading of the machine twice as fast: 2x the work per unit of peak
    assert rows["bikenyc1"]["raw_speedup"] == 4.0 and math.isclose(rows["bikenyc1"]["speedup"], 2.0)
    earlier.write_text(json.dumps({"peak_tflops": {"fp32": 0.05}, "datasets": {"bikenyc1": {"modes": {}}}}))
    with pytest.raises(ConfigError, match="earlier.json: not a bench JSON"):
        read_baseline(str(earlier))
    with pytest.raises(ConfigError, match="missing.json: cannot read"):
        read_baseline(str(tmp_path / "missing.json"))


def test_unknown_dataset_is_a_config_error():
    with pytest.raises(ConfigError):
        BenchmarkConfig(datasets=("nope",))


def test_cost_scaling_counts_every_case_and_times_the_affordable_ones(tmp_path, capsys):
    from stvfm.training.cost_scaling import ScalingConfig, cost_scaling

    config = ScalingConfig(grids=(4, 8, 16), histories=(6, 12), base_grid=4, backbone="tiny", model_options=TINY,
                           time_up_to_gflop=0.05, steps=1)
    rows = {(row["grid"], row["history"]): row for row in cost_scaling(config)["rows"]}
    assert set(rows) == {(4, 6), (8, 6), (16, 6), (4, 12)}
    assert rows[(4, 6)]["flop_ratio"] == 1.0 and rows[(4, 6)]["time_ratio"] == 1.0
    # 4x as many tokens per frame: at least 4x the FLOPs (attention grows faster); twice the history: ~2x
    assert rows[(8, 6)]["flop_ratio"] >= 4 and 1.8 < rows[(4, 12)]["flop_ratio"] < 2.2
    assert rows[(16, 6)]["tokens_per_frame"] == 64
    assert all(positive(row["saved_activations_mib"]) for row in rows.values() if row["train_s_per_window"])
    assert rows[(16, 6)]["train_s_per_window"] is None  # over the timing budget: counted, not run
    # the CLI path (real sizes would take minutes; only check it is wired)
    assert main(["bench", "--scaling", "--out", str(tmp_path / "s.json"), "--backbone", "nothing"]) == 2


def test_bf16_accuracy_check_trains_both_precisions_on_one_schedule(tmp_path):
    from stvfm.testing import SMALL_BACKBONE_CONFIGS, write_synthetic_city
    from stvfm.training.accuracy_check import AccuracyCheckConfig, bf16_accuracy_check

    city = write_synthetic_city(tmp_path / "city.npz", days=10, height=4, width=4)
    options = {"backbone": "dinov2-s", "weights": "random", "backbone_overrides": SMALL_BACKBONE_CONFIGS["dinov2-s"], **TINY}
    check = bf16_accuracy_check(AccuracyCheckConfig(dataset=str(city), out=str(tmp_path / "acc"),
                                                    settings={"limit_train_batches": 2, "model_options": options}))
    assert positive(check["fp32"]["rmse"]) and positive(check["bf16"]["rmse"])
    assert check["relative_rmse_gap"] >= 0 and isinstance(check["within_tolerance"], bool)
    assert (tmp_path / "acc" / "precision-bf16" / "metrics.json").exists()


EPOCH_FIGURES = ("train_gflop_per_window", "val_gflop_per_window", "peak_tflops", "train_tflop", "train_s",
                 "train_utilisation", "val_tflop", "val_s", "val_utilisation", "epoch_tflop", "epoch_s",
                 "epoch_utilisation")


def test_whole_epoch_counts_the_windows_fit_trains_and_validates(tmp_path):
    from stvfm.data.prepared import prepare_data
    from stvfm.data.windows import ProtocolConfig
    from stvfm.testing import write_synthetic_city
    from stvfm.training.benchmark import whole_epoch

    city = write_synthetic_city(tmp_path / "city.npz", days=6, height=4, width=4)
    config = BenchmarkConfig(datasets=("bikenyc1",), backbone="tiny", weights="random", batch_size=4,
                             model_options=TINY, epoch=True, epoch_batches=3, accelerator="cpu")
    row = whole_epoch(str(city), config, peak_tflops=0.1)
    assert row["train_windows"] == 12 and row["train_batches"] == 3 and row["device"] == "cpu"
    assert row["val_windows"] == len(prepare_data(str(city), ProtocolConfig()).dataset("val"))
    assert all(positive(row[key]) for key in EPOCH_FIGURES), row
    assert row["epoch_s"] >= row["train_s"] + row["val_s"]
    # training a window costs about 3x its forward pass (forward + backward)
    assert 2 < row["train_gflop_per_window"] / row["val_gflop_per_window"] < 4


def test_cli_bench_epoch_adds_the_whole_epoch_figure(tmp_path, shared_data_dir, quick_peaks):
    out = tmp_path / "bench.json"
    code = main(["bench", "--datasets", "bikenyc1", "--batch-size", "4", "--steps", "1", "--warmup", "0",
                 "--backbone", "tiny", "--weights", "random", "--epoch", "--epoch-batches", "2",
                 "--accelerator", "cpu", "--data-root", str(shared_data_dir), "--out", str(out),
                 *(arg for key, value in TINY.items() for arg in ("--set", f"{key}={value}"))])
    assert code == 0
    result = json.loads(out.read_text())
    epoch = result["datasets"]["bikenyc1"]["epoch"]
    assert epoch["train_windows"] == 8 and epoch["val_windows"] > 0 and positive(epoch["epoch_utilisation"])
    peak = "bf16" if epoch["precision"] == "bf16" else "fp32"  # the device's native precision, as fit's "auto"
    assert result["targets"]["epoch_utilisation"]["value"] == epoch["epoch_utilisation"]
    assert result["targets"]["epoch_utilisation"]["precision"] == peak
    assert epoch["peak_tflops"] == result["peak_tflops"][peak]
def test_the_accuracy_check_trains_on_the_accelerator_it_is_given(monkeypatch):
    from stvfm.training import runner
    from stvfm.training.accuracy_check import AccuracyCheckConfig, bf16_accuracy_check

    seen = []
    monkeypatch.setattr(runner, "fit", lambda config: seen.append(config) or {"rmse": 1.0, "mae": 1.0, "train_seconds": 0.0})
    bf16_accuracy_check(AccuracyCheckConfig(settings={"accelerator": "gpu"}))
    assert [(run.precision, run.accelerator) for run in seen] == [("32", "gpu"), ("bf16", "gpu")]


def test_a_cuda_trainer_gets_tf32_matmuls_and_pinned_loader_memory(tmp_path, monkeypatch):
    import torch

    from stvfm.data.prepared import prepare_data
    from stvfm.testing import write_synthetic_city
    from stvfm.training import trainer as runner
    from stvfm.training.config import RunConfig

    config = RunConfig(model="stid", dataset=str(write_synthetic_city(tmp_path / "c.npz", days=4)),
                              out=str(tmp_path / "run"), accelerator="cpu", progress=False)
    monkeypatch.setattr(runner, "on_cuda", lambda trainer: True)
    before = torch.get_float32_matmul_precision()
    try:
        trainer = runner.build_trainer(config, tmp_path / "run", callbacks=[], max_epochs=1, log=False)
        assert torch.get_float32_matmul_precision() == "high"
        module = runner.data_module(prepare_data(config.dataset), config, trainer)
        assert module.train_dataloader().pin_memory
    finally:
        torch.set_float32_matmul_precision(before)
