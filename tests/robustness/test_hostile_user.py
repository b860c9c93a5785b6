"""The fifteen failures a hostile user found (issue 28), one regression test or more each, on a tiny city.

Each test names its case: wrong results or lost data (1-10), tracebacks instead of one line (11-14),
unclear messages (15).
"""

from __future__ import annotations

import fcntl
import json
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from robust_helpers import one_line_error, write_tiny_city

from stvfm.cli.main import main
from stvfm.data.sources.generic import read_generic
from stvfm.errors import CheckpointError, ConfigError, DataError, DataWarning, OutputError
from stvfm.training.config import RunConfig

FIT = ("--max-epochs", "1", "--batch-size", "16", "--accelerator", "cpu", "--precision", "32")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished one-epoch stid run on the tiny city: (city file, run folder)."""
    folder = tmp_path_factory.mktemp("trained")
    city = write_tiny_city(folder / "city.npz")
    assert main(["fit", "-m", "stid", "-d", str(city), "-o", str(folder / "run"), *FIT]) == 0
    return city, folder / "run"


def _copy_run(run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy


def _rewrite_checkpoint(path: Path, change) -> None:
    """Load a checkpoint, let ``change`` edit it, save it back with its weights digest made to fit."""
    from stvfm.training.checkpoints import weights_digest

    checkpoint = torch.load(path, weights_only=True)
    change(checkpoint)
    checkpoint["stvfm"]["weights_sha256"] = weights_digest(checkpoint["state_dict"])
    torch.save(checkpoint, path)


def _diverged_copy(run: Path, tmp_path: Path) -> Path:
    """The run's best checkpoint with every weight NaN, as a diverged run saves it (digest made to fit)."""
    diverged = tmp_path / "diverged.ckpt"
    shutil.copy(run / "checkpoints" / "best.ckpt", diverged)

    def poison(checkpoint):
        for value in checkpoint["state_dict"].values():
            if value.is_floating_point():
                value.fill_(float("nan"))

    _rewrite_checkpoint(diverged, poison)
    return diverged


# 1. A checkpoint with bytes flipped inside a weight tensor loaded silently.

def _flip_bytes_in_largest_tensor(path: Path) -> None:
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        member = max((m for m in archive.infolist() if "/data/" in m.filename), key=lambda m: m.file_size)
    offset = member.header_offset
    name_length = int.from_bytes(data[offset + 26:offset + 28], "little")
    extra_length = int.from_bytes(data[offset + 28:offset + 30], "little")
    start = offset + 30 + name_length + extra_length + member.file_size // 2
    for index in range(start, start + 64):
        data[index] ^= 0xFF
    path.write_bytes(bytes(data))


def test_case01_a_checkpoint_with_flipped_weight_bytes_is_refused_by_test_and_predict(capsys, tmp_path, trained):
    city, run = trained
    damaged = tmp_path / "damaged.ckpt"
    shutil.copy(run / "checkpoints" / "best.ckpt", damaged)
    _flip_bytes_in_largest_tensor(damaged)
    assert "fails its CRC check" in one_line_error(capsys, "test", "-c", damaged, "-o", tmp_path / "retest")
    assert "fails its CRC check" in one_line_error(capsys, "predict", "-c", damaged, "-i", city,
                                                   "--output", tmp_path / "forecast.npz")
    assert not (tmp_path / "retest" / "metrics.json").exists() and not (tmp_path / "forecast.npz").exists()


def test_case01_weights_changed_after_saving_differ_from_the_recorded_digest(tmp_path, trained):
    from stvfm.training.checkpoints import load_checkpoint

    _, run = trained
    repacked = tmp_path / "repacked.ckpt"
    checkpoint = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    name = next(key for key, value in checkpoint["state_dict"].items() if value.is_floating_point())
    checkpoint["state_dict"][name] = checkpoint["state_dict"][name] + 1.0
    torch.save(checkpoint, repacked)  # valid zip CRCs, other weights
    with pytest.raises(CheckpointError, match="differ from the digest recorded"):
        load_checkpoint(repacked)


# 2. Claiming --out deleted every hidden .tmp file below it; --out / was accepted.

def test_case02_claiming_a_folder_removes_only_its_own_temporaries(capsys, tmp_path, tiny_city):
    out = tmp_path / "out"
    others = [out / "other-run" / "checkpoints" / ".last.ckpt.abc123.tmp", out / "notes" / ".draft.tmp"]
    own = out / ".metrics.json.x1y2.tmp"
    for path in [*others, own]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("kept?")
    assert main(["evaluate", "-m", "last", "-d", str(tiny_city), "-o", str(out)]) == 0
    assert all(path.read_text() == "kept?" for path in others)
    assert not own.exists()


def test_case02_the_file_system_root_is_no_run_folder():
    with pytest.raises(ConfigError, match="root of the file system"):
        RunConfig(model="last", dataset="city.npz", out="/").validate()


# 3. `stvfm test --out RUN` replaced the trained run's metrics.json.

def test_case03_testing_into_the_trained_runs_own_folder_is_refused(capsys, tmp_path, trained):
    run = _copy_run(trained[1], tmp_path)
    before = (run / "metrics.json").read_bytes()
    assert "checkpoint under test" in one_line_error(capsys, "test", "-c", run / "checkpoints" / "best.ckpt", "-o", run)
    other = tmp_path / "elsewhere.ckpt"
    shutil.copy(run / "checkpoints" / "best.ckpt", other)
    assert "trained run's records" in one_line_error(capsys, "test", "-c", other, "-o", run)
    assert (run / "metrics.json").read_bytes() == before


# 4. Values near +-3e38 and --lr inf gave NaN / inf metrics with exit 0, and metrics.json held NaN.

@pytest.mark.filterwarnings("error::RuntimeWarning")  # numpy's overflow warnings must not leak either
def test_case04_values_that_overflow_float32_scaling_are_refused(capsys, tmp_path):
    city = write_tiny_city(tmp_path / "city.npz")
    with np.load(city) as archive:
        arrays = dict(archive)
    arrays["values"] = np.where(arrays["values"] > np.median(arrays["values"]), 3e38, -3e38).astype(np.float32)
    np.savez(city, **arrays)
    assert "wider than float32 holds" in one_line_error(capsys, "evaluate", "-m", "last", "-d", city,
                                                        "-o", tmp_path / "run")
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_case04_an_infinite_learning_rate_is_refused_before_the_folder(capsys, tmp_path, tiny_city):
    assert "optim.lr" in one_line_error(capsys, "fit", "-m", "stid", "-d", tiny_city, "-o", tmp_path / "run",
                                        "--lr", "inf", *FIT)
    assert not (tmp_path / "run").exists()


def test_case04_non_finite_test_metrics_are_refused_and_never_written(capsys, tmp_path, trained):
    _, run = trained
    diverged = _diverged_copy(run, tmp_path)
    assert "not finite" in one_line_error(capsys, "test", "-c", diverged, "-o", tmp_path / "retest")
    assert not (tmp_path / "retest" / "metrics.json").exists()
    with pytest.raises(OutputError, match="JSON cannot"):
        from stvfm.atomic import write_json_atomic

        write_json_atomic(tmp_path / "x.json", {"rmse": float("nan")})


# 5. Epoch-millisecond timestamps were read as seconds; float timestamps were accepted.

def _write_npz(path: Path, timestamps) -> Path:
    np.savez(path, values=np.ones((len(timestamps), 1, 2, 2), np.float32), timestamps=timestamps)
    return path


def test_case05_integer_epoch_milliseconds_are_read_as_milliseconds(tmp_path):
    start = np.datetime64("2024-03-01T00:00", "ms").astype(np.int64)
    series = read_generic(_write_npz(tmp_path / "ms.npz", start + np.arange(5) * 3_600_000))
    assert series.interval_minutes == 60 and str(series.timestamps[0]) == "2024-03-01T00:00:00"


def test_case05_float_timestamps_are_refused(tmp_path):
    with pytest.raises(DataError, match="floating-point"):
        read_generic(_write_npz(tmp_path / "f.npz", 1.7e9 + np.arange(5) * 3600.0))


# 6. A resume did not notice that the data file at the same path had changed.

def test_case06_a_resume_on_changed_data_is_refused(capsys, tmp_path):
    city = write_tiny_city(tmp_path / "city.npz")
    out = tmp_path / "run"
    assert main(["fit", "-m", "stid", "-d", str(city), "-o", str(out), *FIT]) == 0
    capsys.readouterr()
    with np.load(city) as archive:
        arrays = dict(archive)
    arrays["values"] = arrays["values"] * 2.0
    np.savez(city, **arrays)  # the same path, other data
    assert "data (the file's contents changed)" in one_line_error(capsys, "fit", "-m", "stid", "-d", city,
                                                                 "-o", out, *FIT)


# 7. Two fit processes into one --out both crashed: no lock on a single run.

def test_case07_a_fit_into_a_folder_another_process_holds_is_refused(capsys, tmp_path, tiny_city):
    out = tmp_path / "run"
    out.mkdir()
    with open(out / ".stvfm.lock", "a") as held:  # what the other process's fit holds
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert "another stvfm process" in one_line_error(capsys, "fit", "-m", "stid", "-d", tiny_city, "-o", out, *FIT)
    assert sorted(path.name for path in out.iterdir()) == [".stvfm.lock"]
    assert main(["fit", "-m", "stid", "-d", str(tiny_city), "-o", str(out), *FIT]) == 0  # released: claimable


# 8. Fitting into a folder holding only another run's checkpoints/best.ckpt replaced it.

def test_case08_another_runs_best_checkpoint_is_a_record_of_that_run(capsys, tmp_path, trained):
    city, run = trained
    out = tmp_path / "out"
    (out / "checkpoints").mkdir(parents=True)
    shutil.copy(run / "checkpoints" / "best.ckpt", out / "checkpoints" / "best.ckpt")
    before = (out / "checkpoints" / "best.ckpt").read_bytes()
    assert "left by another run" in one_line_error(capsys, "fit", "-m", "stid", "-d", city, "-o", out, *FIT,
                                                   "--seed", "7")
    assert (out / "checkpoints" / "best.ckpt").read_bytes() == before


# 9. predict --output == --input overwrote the input; compare --markdown onto metrics.json overwrote it.

def test_case09_predict_never_writes_over_its_input(capsys, tmp_path, trained):
    city, run = trained
    series = tmp_path / "series.npz"
    shutil.copy(city, series)
    before = series.read_bytes()
    assert "also an input" in one_line_error(capsys, "predict", "-c", run / "checkpoints" / "best.ckpt",
                                             "-i", series, "--output", series)
    assert series.read_bytes() == before


def test_case09_compare_never_writes_its_table_over_a_runs_metrics(capsys, tmp_path, trained):
    run = _copy_run(trained[1], tmp_path)
    before = (run / "metrics.json").read_bytes()
    assert "metrics.json" in one_line_error(capsys, "compare", run, "--markdown", run / "metrics.json")
    assert (run / "metrics.json").read_bytes() == before


# 10. `ledger add` of a record whose dataset, model or seed held ../.. wrote outside the ledger.

@pytest.mark.parametrize("field, value", [("dataset", "../../escaped"), ("model", "/tmp/abs"),
                                          ("seed", "0/../../x"), ("dataset", "..")])
def test_case10_ledger_names_come_from_validated_fields_only(capsys, tmp_path, trained, field, value):
    from stvfm.ledger import build_record

    record = build_record(trained[1])
    record[field] = value
    source = tmp_path / "incoming" / "record.json"
    source.parent.mkdir()
    source.write_text(json.dumps(record))
    ledger = tmp_path / "deep" / "er" / "ledger"
    assert "not a usable ledger record" in one_line_error(capsys, "ledger", "add", source, "--ledger", ledger)
    assert sorted(path.relative_to(tmp_path).as_posix() for path in tmp_path.rglob("*")) == \
        ["incoming", "incoming/record.json"]


# 11. Every usage error of the CLI printed a traceback: typer raises from its own copy of click.

@pytest.mark.parametrize("args, named", [
    (["fit", "-m", "stid", "-d", "x.npz", "--bogus"], "--bogus"),
    (["fit", "-m", "stid", "-d", "x.npz"], "--out"),
    (["fit", "-m", "stid", "-d", "x.npz", "-o", "r", "--max-epochs", "two"], "--max-epochs"),
    (["fit", "-m", "stid", "-d", "x.npz", "-o", "r", "--lr", "fast"], "--lr"),
])
def test_case11_usage_errors_are_one_line_and_exit_2(capsys, args, named):
    assert named in one_line_error(capsys, *args)


# 12. Wrong types in --config or --set, broken or deep YAML, absurd sizes: tracebacks, or a folder written first.

@pytest.mark.parametrize("config, named", [
    ({"max_epochs": "abc"}, "max_epochs"), ({"batch_size": "8"}, "batch_size"), ({"seed": "abc"}, "seed"),
    ({"max_epochs": 1.5}, "max_epochs"), ({"optim": {"lr": "fast"}}, "optim.lr"),
])
def test_case12_wrong_types_in_a_config_file_name_the_setting(capsys, tmp_path, tiny_city, config, named):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    err = one_line_error(capsys, "fit", "-m", "stid", "-d", tiny_city, "-o", tmp_path / "run", "--config", path)
    assert named in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("value, named", [
    ("series_width=abc", "series_width"), ("series_width=[1,2]", "series_width"), ("series_width=31.7", "series_width"),
    ("series_width=1e12", "series_width"), ("layers=100000000", "layers"), ("layers=[1", "--set layers"),
    ("layers=" + "[" * 5000, "--set layers"),
])
def test_case12_wrong_or_absurd_set_values_name_the_option(capsys, tmp_path, tiny_city, value, named):
    assert named in one_line_error(capsys, "fit", "-m", "stid", "-d", tiny_city, "-o", tmp_path / "run", "--set",
                                   value, *FIT)
    assert not (tmp_path / "run").exists()


def test_case12_a_checkpoint_recording_an_absurd_size_is_refused(capsys, tmp_path, trained):
    city, run = trained
    absurd = tmp_path / "absurd.ckpt"
    shutil.copy(run / "checkpoints" / "best.ckpt", absurd)
    _rewrite_checkpoint(absurd, lambda checkpoint: checkpoint["stvfm"]["run"]["model_options"].update(layers=10**8))
    assert "layers" in one_line_error(capsys, "predict", "-c", absurd, "-i", city, "--output", tmp_path / "f.npz")


# 13. Out-of-range seeds, NaN rates, unknown devices and accelerators: tracebacks, some after the folder was written.

@pytest.mark.parametrize("flag, value, named", [
    ("--seed", "-1", "seed"), ("--seed", str(2**40), "seed"), ("--weight-decay", "nan", "optim.weight_decay"),
    ("--warmup-epochs", "nan", "optim.warmup_epochs"), ("--devices", "abc", "devices"),
    ("--accelerator", "tpu", "accelerator"),
])
def test_case13_out_of_range_values_are_refused_before_the_folder(capsys, tmp_path, tiny_city, flag, value, named):
    args = ["fit", "-m", "stid", "-d", tiny_city, "-o", tmp_path / "run", "--max-epochs", "1", flag, value]
    assert named in one_line_error(capsys, *args)
    assert not (tmp_path / "run").exists()


# 14. An npz whose zip directory claims terabytes, a full disk at a checkpoint, malformed ledger records and run
#     records: tracebacks.

def test_case14_an_npz_whose_zip_directory_claims_more_than_it_holds(capsys, tmp_path):
    path = tmp_path / "claims.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive, archive.open("values.npy", "w") as member:
        np.lib.format.write_array_header_1_0(member, {"descr": "<f4", "fortran_order": False, "shape": (2**30 - 16,)})
        member.write(b"\0" * 64)
    data = bytearray(path.read_bytes())
    central = data.rfind(b"PK\x01\x02")
    data[central + 24:central + 28] = (2**32 - 2).to_bytes(4, "little")  # uncompressed size: 4 GiB
    path.write_bytes(bytes(data))
    assert "claims 4,294,967,294 bytes" in one_line_error(capsys, "data", "info", path)


def test_case14_a_full_disk_while_saving_a_checkpoint_is_one_line(capsys, tmp_path, tiny_city, monkeypatch):
    def no_space(checkpoint, path):  # what torch's zip writer raises when the disk fills under it
        Path(path).write_bytes(b"PK partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 832 vs 768\n"
                           "PytorchStreamWriter failed writing file data/3: file write failed")

    monkeypatch.setattr("stvfm.training.checkpoints.torch.save", no_space)
    err = one_line_error(capsys, "fit", "-m", "stid", "-d", tiny_city, "-o", tmp_path / "run", *FIT)
    assert "best.ckpt: cannot write it" in err
    assert not list((tmp_path / "run" / "checkpoints").glob(".*.tmp"))  # the partial file is gone


@pytest.mark.parametrize("field, value", [("rmse", None), ("settings", [1, 2]), ("per_horizon", None)])
def test_case14_a_ledger_report_over_malformed_records_is_one_line(capsys, tmp_path, trained, field, value):
    from stvfm.ledger import build_record

    record = build_record(trained[1])
    record[field] = value
    ledger = tmp_path / "ledger" / str(record["dataset"])
    ledger.mkdir(parents=True)
    (ledger / "r.json").write_text(json.dumps(record))
    assert field in one_line_error(capsys, "ledger", "report", "-d", record["dataset"], "--ledger", tmp_path / "ledger")


@pytest.mark.parametrize("field, value", [("channel", "0"), ("seed", "3"), ("max_epochs", "1")])
def test_case14_a_checkpoint_whose_run_record_has_wrong_types(capsys, tmp_path, trained, field, value):
    city, run = trained
    odd = tmp_path / "odd.ckpt"
    shutil.copy(run / "checkpoints" / "best.ckpt", odd)
    _rewrite_checkpoint(odd, lambda checkpoint: checkpoint["stvfm"]["run"].update({field: value}))
    err = one_line_error(capsys, "test", "-c", odd, "-o", tmp_path / "retest")
    assert "malformed run record" in err and field in err


# 15. Error text printed as rich markup, library warnings leaking, messages that name the wrong thing.

def test_case15_error_text_is_printed_as_written(capsys, tmp_path):
    assert "city[v2].npz" in one_line_error(capsys, "data", "info", tmp_path / "city[v2].npz")


def test_case15_a_timezone_offset_is_one_project_warning_and_z_none(tmp_path):
    hours = [f"2024-01-01T{hour:02d}:00" for hour in range(5)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_generic(_write_npz(tmp_path / "z.npz", np.array([f"{text}Z" for text in hours])))
        assert caught == []
        read_generic(_write_npz(tmp_path / "plus.npz", np.array([f"{text}+02:00" for text in hours])))
    assert [warning.category for warning in caught] == [DataWarning]


def test_case15_a_garbage_netcdf_is_one_line(tmp_path):
    path = tmp_path / "garbage.nc"
    path.write_bytes(b"not a netcdf file at all" * 10)
    with pytest.raises(DataError) as error:
        read_generic(path)
    assert "\n" not in str(error.value) and "garbage.nc" in str(error.value)


def test_case15_precision_32_in_yaml_is_precision_32(tmp_path):
    from stvfm.training.recipes import resolve_run_config

    path = tmp_path / "run.yaml"
    path.write_text("precision: 32\n")
    config = resolve_run_config({"model": "stid", "dataset": "x.npz", "out": str(tmp_path / "r")}, path)
    assert config.precision == "32"


def test_case15_nan_weights_in_predict_blame_the_checkpoint(capsys, tmp_path, trained):
    city, run = trained
    diverged = _diverged_copy(run, tmp_path)
    err = one_line_error(capsys, "predict", "-c", diverged, "-i", city, "--output", tmp_path / "forecast.npz")
    assert "diverged.ckpt" in err and "forecast.npz" not in err


def test_case15_a_config_path_that_is_a_folder_says_so(capsys, tmp_path, tiny_city):
    assert "is a folder" in one_line_error(capsys, "fit", "-m", "stid", "-d", tiny_city, "-o", tmp_path / "run",
                                           "--config", tmp_path)
