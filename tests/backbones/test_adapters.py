from __future__ import annotations

import copy

import pytest
import torch
from backbone_helpers import SMALL_CONFIGS, random_tokens

from stvfm.backbones import add_adapters, create_backbone
from stvfm.errors import ConfigError


def small_backbone(name: str):
    torch.manual_seed(0)
    return create_backbone(name, weights="random", **SMALL_CONFIGS[name])


@pytest.mark.parametrize("name", sorted(SMALL_CONFIGS))
def test_adapters_start_as_the_identity(name):
    backbone = small_backbone(name)
    tokens = random_tokens(backbone)
    frozen_output = backbone(tokens)
    adapters = add_adapters(backbone)
    assert len(adapters) == backbone.depth
    assert adapters[0].down.out_features == backbone.width // 4
    assert torch.equal(backbone(tokens), frozen_output)


@pytest.mark.parametrize("name", sorted(SMALL_CONFIGS))
def test_only_adapters_train_and_every_one_sits_in_the_forward_pass(name):
    backbone = small_backbone(name)
    adapters = add_adapters(backbone)
    trainable = [name for name, parameter in backbone.named_parameters() if parameter.requires_grad]
    assert trainable and all(name.startswith("adapters.") for name in trainable)

    backbone(random_tokens(backbone)).square().sum().backward()
    for adapter in adapters:  # at zero init only the up-projection gets a non-zero gradient
        assert adapter.up.weight.grad is not None and adapter.up.weight.grad.abs().sum() > 0
        assert adapter.down.weight.grad is not None
    frozen = [parameter for name, parameter in backbone.named_parameters() if not name.startswith("adapters.")]
    assert all(not parameter.requires_grad and parameter.grad is None for parameter in frozen)


def test_adapters_change_the_output_once_trained():
    backbone = small_backbone("tiny")
    tokens = random_tokens(backbone)
    before = backbone(tokens)
    adapters = add_adapters(backbone)
    with torch.no_grad():
        adapters[-1].up.bias.fill_(0.5)
    assert not torch.allclose(backbone(tokens), before)


def test_adapters_leave_the_backbone_state_dict_names_alone():
    backbone = small_backbone("tiny")
    names = set(backbone.state_dict())
    add_adapters(backbone)
    assert {name for name in backbone.state_dict() if not name.startswith("adapters.")} == names


def test_a_deep_copy_runs_its_own_adapters():
    backbone = small_backbone("tiny")
    add_adapters(backbone)
    twin = copy.deepcopy(backbone)
    with torch.no_grad():
        twin.adapters[0].up.bias.fill_(1.0)
    tokens = random_tokens(backbone)
    assert not torch.allclose(twin(tokens), backbone(tokens))
    assert torch.equal(backbone(tokens), small_backbone("tiny")(tokens))


def test_adapters_go_in_once():
    backbone = small_backbone("tiny")
    add_adapters(backbone)
    with pytest.raises(ConfigError, match="already has adapters"):
        add_adapters(backbone)


def test_adapter_ratio_must_be_positive():
    with pytest.raises(ConfigError, match="ratio must be positive"):
        add_adapters(small_backbone("tiny"), ratio=0)
