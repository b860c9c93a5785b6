"""One declaration per run setting: the CLI options, ``--config`` keys and value checks all come from it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest
import typer
import yaml
from typer.testing import CliRunner

from stvfm.cli.main import app
from stvfm.cli.options import with_settings
from stvfm.errors import ConfigError
from stvfm.training import recipes
from stvfm.training.config import RunConfig
from stvfm.training.pretrain import PretrainConfig
from stvfm.training.settings import (
    IDENTITY,
    PRETRAIN_DEFAULTS,
    SEARCH_TRIAL_DEFAULTS,
    OptimConfig,
    RunSettings,
    _role,
    check_overrides,
)


@dataclass
class WithSmoothing(RunConfig):
    """RunConfig with one setting added, as a contributor would add it to ``RunSettings``: one field."""

    smoothing: float = _role(IDENTITY, 0.0, minimum=0, maximum=1, help="Label smoothing of the targets.")


def _smoothing_app(seen: list) -> typer.Typer:
    smoothing_app = typer.Typer()

    @smoothing_app.command()
    @with_settings("model", "dataset", "out", "smoothing", required=("model", "dataset", "out"),
                   declarations=WithSmoothing)
    def fit_like(settings: dict) -> None:
        seen.append(WithSmoothing.from_dict(settings))

    @smoothing_app.command()
    def other() -> None:  # a second command, so typer keeps command names
        pass

    return smoothing_app


def test_adding_a_setting_is_one_field_and_it_becomes_an_option_a_config_key_and_a_check(tmp_path, monkeypatch):
    seen: list = []
    runner = CliRunner()
    smoothing_app = _smoothing_app(seen)
    assert "Label smoothing of the targets." in runner.invoke(smoothing_app, ["fit-like", "--help"]).output
    args = ["fit-like", "-m", "stid", "-d", "city.npz", "-o", str(tmp_path / "run")]
    assert runner.invoke(smoothing_app, [*args, "--smoothing", "0.25"]).exit_code == 0
    assert seen[-1].smoothing == 0.25 and seen[-1].identity()["smoothing"] == 0.25
    refused = runner.invoke(smoothing_app, [*args, "--smoothing", "1.5"])
    assert isinstance(refused.exception, ConfigError) and "smoothing" in str(refused.exception)

    monkeypatch.setattr(recipes, "RunConfig", WithSmoothing)  # --config files read the same declaration
    flags = {"model": "stid", "dataset": "city.npz", "out": str(tmp_path / "run")}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"smoothing": 0.5}))
    assert recipes.resolve_run_config(flags, path, use_recipe=False).smoothing == 0.5
    path.write_text(yaml.safe_dump({"smoothing": "high"}))
    with pytest.raises(ConfigError, match="smoothing"):
        recipes.resolve_run_config(flags, path, use_recipe=False)
    with pytest.raises(ConfigError, match="smoothing"):
        check_overrides({"smoothing": -0.1}, WithSmoothing)  # reproduce's and search's settings
    assert not (tmp_path / "run").exists()


def _violations(cls: type) -> list[tuple[str, object]]:
    """A value just outside each declared range or choice list."""
    cases = []
    for field in dataclasses.fields(cls):
        meta = field.metadata
        if meta.get("choices"):
            cases.append((field.name, "no-such-" + field.name))
        for key, step in (("minimum", -1), ("maximum", 1), ("above", 0), ("below", 0)):
            if meta.get(key) is not None:
                cases.append((field.name, meta[key] + step))
    return cases


@pytest.mark.parametrize("name, value", _violations(RunSettings))
def test_every_declared_range_of_a_run_setting_is_enforced_naming_it(tmp_path, name, value):
    with pytest.raises(ConfigError, match=rf"^{name}: "):
        RunConfig(model="stid", dataset="city.npz", out=str(tmp_path), **{name: value})


@pytest.mark.parametrize("name, value", _violations(OptimConfig))
def test_every_declared_range_of_an_optimiser_setting_is_enforced_naming_it(name, value):
    with pytest.raises(ConfigError, match=rf"^optim\.{name}: "):
        OptimConfig(**{name: value})


def _options(command: str) -> dict:
    return {param.name: param for param in typer.main.get_command(app).commands[command].params}


@pytest.mark.parametrize("command, own", [("fit", ()), ("evaluate", ()), ("pretrain", ()),
                                          ("reproduce", ("out", "seed")), ("search", ("out",))])
def test_the_run_options_of_every_command_carry_their_declared_help(command, own):
    """``own``: the command's orchestration options that share a setting's name (reproduce's repeatable seeds)."""
    declared = {field.name: field.metadata["help"] for cls in (RunSettings, OptimConfig)
                for field in dataclasses.fields(cls)}
    generated = {name: option for name, option in _options(command).items() if name in declared and name not in own}
    assert len(generated) >= 5
    for name, option in generated.items():
        assert option.help.startswith(declared[name]), name


def test_commands_default_to_the_declared_defaults_or_name_their_own():
    assert _options("pretrain")["max_epochs"].default == PRETRAIN_DEFAULTS["max_epochs"] \
        == next(field.default for field in dataclasses.fields(PretrainConfig) if field.name == "max_epochs")
    assert _options("search")["max_epochs"].default == SEARCH_TRIAL_DEFAULTS["max_epochs"]
    declared_epochs = next(field.default for field in dataclasses.fields(RunSettings) if field.name == "max_epochs")
    assert f"else {declared_epochs}." in _options("fit")["max_epochs"].help
    assert _options("fit")["max_epochs"].default is None  # not given: the recipe's, else the declared default
