"""Every model config validates itself the same way, and declares its protocol needs once."""

from __future__ import annotations

import dataclasses

import pytest

from stvfm.errors import ConfigError
from stvfm.models import list_models
from stvfm.models.base import ModelConfig
from stvfm.models.registry import build_config

NAMES = [entry.name for entry in list_models()]


@pytest.mark.parametrize("name", NAMES)
def test_every_config_is_a_model_config_whose_defaults_validate(name):
    config = build_config(name)
    assert isinstance(config, ModelConfig)
    config.validate()


@pytest.mark.parametrize("name", NAMES)
def test_a_non_positive_size_is_one_config_error_line_naming_the_option(name):
    config = build_config(name)
    sizes = [field.name for field in dataclasses.fields(config)
             if type(getattr(config, field.name)) is int and getattr(config, field.name) > 0
             and field.name not in ("daily_context", "weekly_context", "prompt_tokens", "pretrain_steps",
                                    "encoder_layers", "cross_prompt_layers", "downsamples", "unfrozen_layers")]
    if not sizes:
        pytest.skip(f"{name} has no size option")
    with pytest.raises(ConfigError) as error:
        build_config(name, {sizes[0]: -1})
    message = str(error.value)
    assert "\n" not in message and sizes[0] in message


@pytest.mark.parametrize("name", NAMES)
def test_protocol_needs_read_as_the_runner_reads_them(name):
    config = build_config(name)
    daily, weekly = getattr(config, "daily_context", 0), getattr(config, "weekly_context", 0)
    assert isinstance(daily, int) and isinstance(weekly, int) and daily >= 0 and weekly >= 0


def test_dropout_outside_zero_to_one_is_rejected():
    with pytest.raises(ConfigError, match="STID option dropout must be between 0 and 1, got 1.5"):
        build_config("stid", {"dropout": 1.5})
