"""Every way a user can hand the CLI a bad path, option or file ends in one line naming it and exit 2."""

from __future__ import annotations

import os
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from robust_helpers import one_line_error, write_tiny_city

from stvfm.cli.main import main
from stvfm.data.sources.generic import read_generic
from stvfm.errors import DataError


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished one-epoch stid run on the tiny city: (city file, best checkpoint)."""
    folder = tmp_path_factory.mktemp("trained")
    city = write_tiny_city(folder / "city.npz")
    assert main(["fit", "-m", "stid", "-d", str(city), "-o", str(folder / "run"), "--max-epochs", "1",
                 "--batch-size", "16", "--accelerator", "cpu"]) == 0
    return city, folder / "run" / "checkpoints" / "best.ckpt"


def test_an_out_that_is_a_file_or_cannot_be_made(capsys, tmp_path, tiny_city):
    a_file = tmp_path / "taken"
    a_file.write_text("mine")
    assert "taken: exists and is not a folder" in one_line_error(
        capsys, "evaluate", "-m", "last", "-d", tiny_city, "-o", a_file)
    assert a_file.read_text() == "mine"
    assert "/proc/stvfm-run" in one_line_error(capsys, "evaluate", "-m", "last", "-d", tiny_city, "-o", "/proc/stvfm-run")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_a_gpu_accelerator_without_a_gpu(capsys, tmp_path, tiny_city):
    err = one_line_error(capsys, "fit", "-m", "stid", "-d", tiny_city, "-o", tmp_path / "run", "--accelerator", "gpu")
    assert "accelerator 'gpu'" in err and not (tmp_path / "run").exists()


def test_a_negative_batch_limit(capsys, tmp_path, tiny_city):
    assert "limit_train_batches" in one_line_error(capsys, "fit", "-m", "stid", "-d", tiny_city, "-o", tmp_path / "r",
                                                   "--limit-train-batches", "-1", "--accelerator", "cpu")


def test_an_npy_header_claiming_terabytes(capsys, tmp_path):
    path = tmp_path / "huge.npz"
    header = {"descr": "<f8", "fortran_order": False, "shape": (10 ** 6, 1, 1000, 1000)}
    with zipfile.ZipFile(path, "w") as archive, archive.open("values.npy", "w") as member:
        np.lib.format.write_array_header_1_0(member, header)
        member.write(b"\0" * 64)
    err = one_line_error(capsys, "data", "info", path)
    assert "huge.npz" in err and "claims shape" in err


def test_a_netcdf_interval_attribute_that_is_no_number(capsys, tmp_path):
    import xarray as xr

    path = tmp_path / "bad.nc"
    times = np.datetime64("2024-01-01T00:00") + np.arange(300) * np.timedelta64(1, "h")
    values = xr.DataArray(np.ones((300, 1, 2, 2), np.float32), dims=("time", "channel", "y", "x"),
                          coords={"time": times}, attrs={"interval_minutes": "abc"})
    xr.Dataset({"values": values}).to_netcdf(path, engine="scipy")
    assert "bad.nc: 'interval_minutes'" in one_line_error(capsys, "data", "info", path)


def test_compare_on_a_file_that_is_not_a_run(capsys, tiny_city):
    assert "city.npz: not a metrics.json" in one_line_error(capsys, "compare", tiny_city)


def test_predict_into_a_folder_or_a_non_npz_file(capsys, tmp_path, trained):
    city, best = trained
    assert "give a file ending in .npz" in one_line_error(capsys, "predict", "-c", best, "-i", city, "--output", tmp_path)
    assert "give a file ending in .npz" in one_line_error(capsys, "predict", "-c", best, "-i", city,
                                                          "--output", tmp_path / "p.csv")
    assert not (tmp_path / "p.csv").exists()


def _corrupt(checkpoint: dict, case: str) -> dict:
    if case == "stvfm a string":
        checkpoint["stvfm"] = "stid"
    elif case == "stvfm empty":
        checkpoint["stvfm"] = {}
    elif case == "state_dict a list":
        checkpoint["state_dict"] = [1, 2]
    elif case == "no data record":
        del checkpoint["stvfm"]["data"]
    elif case == "absurd width":
        checkpoint["stvfm"]["run"]["model_options"]["series_width"] = 10 ** 13
    return checkpoint


@pytest.mark.parametrize("case", ["stvfm a string", "stvfm empty", "state_dict a list", "no data record", "absurd width"])
def test_malformed_checkpoint_structures(capsys, tmp_path, trained, case):
    city, best = trained
    bad = tmp_path / "bad.ckpt"
    torch.save(_corrupt(torch.load(best, weights_only=True), case), bad)
    err = one_line_error(capsys, "predict", "-c", bad, "-i", city, "--output", tmp_path / "p.npz")
    assert "bad.ckpt" in err and "weights_only" not in err


def test_a_checkpoint_with_pickled_code_passes_on_no_weights_only_advice(capsys, tmp_path, trained):
    city, _ = trained
    evil = tmp_path / "evil.ckpt"
    torch.save({"stvfm": {"run": {"model": "stid"}}, "state_dict": {"w": Path("x")}}, evil)
    err = one_line_error(capsys, "test", "-c", evil, "-o", tmp_path / "o")
    assert "evil.ckpt" in err and "weights_only" not in err and "can still be loaded" not in err


def test_a_fifo_named_npz_is_refused_not_read_forever(tmp_path):
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    outcome = []
    reader = threading.Thread(target=lambda: outcome.append(_error_of(read_generic, fifo)), daemon=True)
    reader.start()
    reader.join(timeout=20)
    assert outcome and isinstance(outcome[0], DataError) and "pipe.npz: not a regular file" in str(outcome[0])


def _error_of(function, *args):
    try:
        function(*args)
    except Exception as error:  # noqa: BLE001  (the test inspects which)
        return error
    return None


def test_a_huge_outlier_is_one_warning_naming_its_step_and_cell(capsys, tmp_path):
    city = write_tiny_city(tmp_path / "city.npz")
    with np.load(city) as archive:
        arrays = dict(archive)
    arrays["values"][17, 0, 1, 2] = 1e30
    np.savez(city, **arrays)
    assert main(["evaluate", "-m", "last", "-d", str(city), "-o", str(tmp_path / "run")]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "step 17" in warnings[0] and "cell (y=1, x=2)" in warnings[0]
