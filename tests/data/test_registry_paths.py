import pytest

from stvfm.data import paths
from stvfm.data.registry import get_dataset, list_datasets
from stvfm.errors import ConfigError

PAPER_TABLE_1 = {
    "crowd": ((16, 20), 30),
    "cellular": ((16, 20), 30),
    "tdrive": ((32, 32), 60),
    "bikenyc1": ((16, 8), 60),
    "bikenyc2": ((10, 20), 30),
    "taxinyc1": ((16, 12), 30),
    "taxinyc2": ((20, 10), 30),
    "trafficzz": ((26, 26), 5),
    "traffictj": ((24, 30), 5),
    "trafficsh": ((28, 32), 5),
}


def test_the_papers_ten_datasets_are_registered():
    own_files = [spec for spec in list_datasets() if not spec.family]
    assert {spec.name: (spec.grid, spec.interval_minutes) for spec in own_files} == PAPER_TABLE_1
    assert {spec.name: spec.family for spec in list_datasets() if spec.family} == {"bikenyc1-60d": "bikenyc1"}
    for spec in list_datasets():
        assert spec.files and spec.download_page.startswith("https://") and spec.citation


def test_unknown_dataset_lists_known_names():
    with pytest.raises(ConfigError, match="unknown dataset 'nope'; known datasets: bikenyc1, bikenyc1-60d, bikenyc2"):
        get_dataset("nope")
    assert get_dataset("BikeNYC1").name == "bikenyc1"


def test_root_resolution_order(tmp_path, monkeypatch):
    explicit, from_env = tmp_path / "explicit", tmp_path / "env"
    monkeypatch.setenv(paths.DATA_ROOT_ENV, str(from_env))
    assert paths.resolve_data_root(explicit) == explicit
    assert paths.resolve_data_root() == from_env
    monkeypatch.delenv(paths.DATA_ROOT_ENV)
    project = tmp_path / "work" / "project" / "src"
    shared = tmp_path / "work" / "shared" / "data"
    (shared / "bikenyc1").mkdir(parents=True)
    project.mkdir(parents=True)
    monkeypatch.chdir(project)
    assert paths.resolve_data_root() == shared


def test_falls_back_to_user_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "_shared_data_beside", lambda start: None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert paths.resolve_data_root() == tmp_path / "cache" / "stvfm" / "data"


def test_is_available(shared_data_dir, tmp_path):
    assert paths.is_available(get_dataset("bikenyc1"), shared_data_dir)
    assert not paths.is_available(get_dataset("crowd"), shared_data_dir)
    assert paths.missing_files(get_dataset("crowd"), tmp_path) == [tmp_path / "crowd" / "Crowd_short.json"]
