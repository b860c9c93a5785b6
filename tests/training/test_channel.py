"""One meaning for channel: an index or ALL_CHANNELS; None only "not given" (channel 0); records written
when every channel was spelled null still read, and keep their names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stvfm.data.series import ALL_CHANNELS, channel_flag
from stvfm.errors import CheckpointError, ConfigError
from stvfm.ledger import check_record, identity, record_name
from stvfm.training.config import RunConfig

COMMITTED_LEDGER = Path(__file__).parents[2] / "docs" / "results" / "ledger"


def run(**settings) -> RunConfig:
    return RunConfig(**{"model": "stid", "dataset": "city.npz", "out": "run", **settings})


def test_none_is_not_given_and_means_channel_zero_every_channel_is_spelled_out():
    assert run().channel == run(channel=None).channel == 0
    assert run(channel=ALL_CHANNELS).channel == ALL_CHANNELS
    assert run(channel=ALL_CHANNELS).identity() != run(channel=0).identity()
    assert (channel_flag(ALL_CHANNELS), channel_flag(2)) == (-1, 2)


@pytest.mark.parametrize("channel", [-1, "every", "0", True, 1.5])
def test_anything_else_is_one_line_naming_the_channel(channel):
    with pytest.raises(ConfigError, match="channel"):
        run(channel=channel)


def test_a_record_written_with_null_for_every_channel_reads_as_all_channels():
    legacy = run(channel=ALL_CHANNELS).to_dict() | {"channel": None}
    assert RunConfig.from_record(legacy, "old checkpoint").channel == ALL_CHANNELS
    assert RunConfig.from_dict(legacy).channel == ALL_CHANNELS  # an old run's config.yaml given to --config
    with pytest.raises(CheckpointError, match="channel"):
        RunConfig.from_record(legacy | {"channel": "0"}, "a checkpoint")


def committed_records() -> list[Path]:
    return sorted(COMMITTED_LEDGER.rglob("*.json"))


@pytest.mark.skipif(not committed_records(), reason="no committed ledger records")
def test_ledger_record_names_stay_as_they_were_written():
    for path in committed_records():
        assert f"{record_name(check_record(json.loads(path.read_text()), path))}.json" == path.name
    record = json.loads(committed_records()[0].read_text())
    legacy = record | {"channel": None, "settings": record["settings"] | {"channel": None}}
    spelled = record | {"channel": ALL_CHANNELS, "settings": record["settings"] | {"channel": ALL_CHANNELS}}
    name = record_name(check_record(legacy, "legacy record"))
    assert name == record_name(check_record(spelled, "new record")) and "-chall-seed" in name
    assert identity(legacy["settings"]) != identity(record["settings"])


def test_channel_minus_one_on_the_command_line_runs_every_channel_and_records_it(tmp_path, monkeypatch):
    from stvfm.cli.main import main
    from stvfm.data.series import GridSeries
    from stvfm.data.sources.generic import save_generic_npz

    steps = 10 * 24
    values = np.random.default_rng(0).poisson(4.0, size=(steps, 2, 4, 4)).astype(np.float32)
    stamps = np.datetime64("2024-01-01T00:00", "s") + np.arange(steps) * np.timedelta64(3600, "s")
    city = save_generic_npz(GridSeries("city", values, stamps, 60, ("inflow", "outflow")), tmp_path / "city.npz")
    monkeypatch.setenv("STVFM_LEDGER", str(tmp_path / "ledger"))
    assert main(["evaluate", "-m", "last", "-d", str(city), "-o", str(tmp_path / "run"), "--channel", "-1"]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["channel"] == metrics["settings"]["channel"] == ALL_CHANNELS
    with np.load(tmp_path / "run" / "predictions.npz") as saved:
        assert len(saved["channel_names"]) == saved["prediction"].shape[2] == 2  # inflow and outflow
    assert [path.name.split("-seed")[0] for path in (tmp_path / "ledger").rglob("*.json")] == ["last-chall"]
