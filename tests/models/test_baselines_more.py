"""MIM, MAU, ACFM, STGSP, MC-STL, ST-Norm and ST-LLM: shapes, learning, registry, ST-LLM weights."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from stvfm.errors import CheckpointError, ConfigError
from stvfm.models import ForecastShape, create_model
from stvfm.testing import make_batch, overfit_losses

TINY_GPT2 = dict(n_embd=32, n_layer=2, n_head=2, n_positions=64)

#: Small widths so that each model's tests stay well under a second or two.
TINY = {
    "mim": dict(num_layers=2, hidden=8),
    "mau": dict(num_layers=2, hidden=8, tau=2),
    "acfm": dict(hidden=8, daily_context=2),
    "stgsp": dict(hidden=16, heads=2, layers=1, daily_context=2, weekly_context=1),
    "mcstl": dict(hidden=16, heads=2, layers=1),
    "stnorm": dict(channels=8, skip_channels=16),
    "stllm": dict(weights="random", llm_layers=2, embed_width=8, gpt2_overrides=TINY_GPT2),
}
CONTEXT = {"acfm": (2, 0), "stgsp": (2, 1)}


@pytest.fixture(autouse=True)
def single_thread():
    """These recurrent models run hundreds of tiny ops: a second thread only adds contention."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def shape_for(name: str, **grid) -> ForecastShape:
    daily, weekly = CONTEXT.get(name, (0, 0))
    base = ForecastShape(history=6, horizon=6, channels=1, height=6, width=4, slots_per_day=24)
    return dataclasses.replace(base, daily_context=daily, weekly_context=weekly, **grid)


@pytest.mark.parametrize("name", sorted(TINY))
@pytest.mark.parametrize("grid", [dict(height=6, width=4), dict(height=5, width=3, channels=2)])
def test_forecast_shape(name, grid):
    torch.manual_seed(0)
    shape = shape_for(name, **grid)
    model = create_model(name, shape, **TINY[name]).eval()
    batch = make_batch(shape, batch_size=2)
    forecast = model.predict(batch)
    assert forecast.shape == (2, shape.horizon, shape.channels, shape.height, shape.width)
    assert torch.isfinite(forecast).all()


@pytest.mark.parametrize("name", sorted(TINY))
def test_loss_decreases(name):
    torch.manual_seed(0)
    shape = shape_for(name)
    model = create_model(name, shape, **TINY[name])
    first, last = overfit_losses(model, make_batch(shape, batch_size=2), steps=25)
    assert last < first


@pytest.mark.parametrize("name", sorted(TINY))
def test_a_training_step_runs_under_bf16_autocast(name):
    """What `fit --precision bf16` does: buffers updated in training must accept bf16 activations."""
    torch.manual_seed(0)
    shape = shape_for(name)
    model = create_model(name, shape, **TINY[name]).train()
    batch = make_batch(shape, batch_size=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model.loss(batch, model(batch))["loss"]
    loss.backward()
    assert torch.isfinite(loss)


@pytest.mark.parametrize("name", ["acfm", "stgsp"])
def test_context_models_check_data_context(name):
    model = create_model(name, shape_for(name), **TINY[name])
    assert (model.daily_context, model.weekly_context) == CONTEXT[name]
    with pytest.raises(ConfigError, match="daily_context"):
        create_model(name, shape_for("mim"), **TINY[name])


def test_mcstl_loss_has_auxiliary_terms_only_in_training():
    shape = shape_for("mcstl")
    model = create_model("mcstl", shape, **TINY["mcstl"])
    batch = make_batch(shape, batch_size=2)
    terms = model.loss(batch, model(batch))
    assert {"masked_reconstruction", "contrastive"} <= set(terms)
    expected = terms["mse_st"] + 0.1 * terms["masked_reconstruction"] + 0.1 * terms["contrastive"]
    assert torch.allclose(terms["loss"], expected)
    model.eval()
    terms = model.loss(batch, model(batch))
    assert set(terms) == {"loss", "mse_st"}


def test_stnorm_temporal_norm_uses_running_statistics_in_eval():
    shape = shape_for("stnorm")
    model = create_model("stnorm", shape, **TINY["stnorm"])
    batch = make_batch(shape, batch_size=2)
    model(batch)
    model.eval()
    single = {key: value[:1] for key, value in batch.items()}
    assert torch.allclose(model(single)["forecast"], model(batch)["forecast"][:1], atol=1e-6)


def test_mim_needs_a_mim_block():
    with pytest.raises(ConfigError, match="num_layers"):
        create_model("mim", shape_for("mim"), num_layers=1)


def _stllm(**overrides):
    options = {**TINY["stllm"], **overrides}
    return create_model("stllm", shape_for("stllm"), **options)


def test_stllm_partially_frozen_attention():
    model = _stllm()
    assert model.weights_label == "GPT-2 (random-init)"
    trainable = {name for name, parameter in model.gpt2.named_parameters() if parameter.requires_grad}
    assert "h.1.attn.c_attn.weight" in trainable and "h.0.attn.c_attn.weight" not in trainable
    assert "h.0.ln_1.weight" in trainable and "wpe.weight" in trainable
    assert not any(".mlp." in name for name in trainable) and "wte.weight" not in trainable
    batch = make_batch(shape_for("stllm"), batch_size=2)
    model.loss(batch, model(batch))["loss"].backward()
    for name, parameter in model.gpt2.named_parameters():
        assert (parameter.grad is not None) == (name in trainable), name


def test_stllm_hub_offline_is_a_checkpoint_error(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(CheckpointError, match="path:"):
        _stllm(weights="hub:gpt2")


def test_stllm_local_weights_round_trip(tmp_path):
    from safetensors.torch import save_file

    source = _stllm()
    state = {key: value.contiguous() for key, value in source.gpt2.state_dict().items()}
    save_file(state, str(tmp_path / "gpt2.safetensors"))
    loaded = _stllm(weights=f"path:{tmp_path / 'gpt2.safetensors'}")
    assert loaded.weights_label == f"GPT-2 (path:{tmp_path / 'gpt2.safetensors'})"
    for key, value in state.items():
        assert torch.equal(loaded.gpt2.state_dict()[key], value), key

    source.gpt2.save_pretrained(tmp_path / "folder")
    from_folder = _stllm(weights=f"path:{tmp_path / 'folder'}", gpt2_overrides={})
    assert torch.equal(from_folder.gpt2.wpe.weight, source.gpt2.wpe.weight)


def test_stllm_rejects_corrupt_and_mismatched_weights(tmp_path):
    corrupt = tmp_path / "broken.safetensors"
    corrupt.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="cannot read"):
        _stllm(weights=f"path:{corrupt}")
    torch.save({"h.0.unknown": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="missing"):
        _stllm(weights=f"path:{tmp_path / 'other.pt'}")
    with pytest.raises(CheckpointError, match="not found"):
        _stllm(weights=f"path:{tmp_path / 'absent.pt'}")
    with pytest.raises(ConfigError, match="weights"):
        _stllm(weights="gpt2")


def test_mcstl_pretrains_its_self_supervised_tasks_first_then_forecasts():
    shape = shape_for("mcstl")
    model = create_model("mcstl", shape, **TINY["mcstl"], pretrain_steps=2).train()
    batch = make_batch(shape, batch_size=2)
    for _ in range(2):
        terms = model.loss(batch, model(batch))
        assert torch.allclose(terms["loss"], terms["masked_reconstruction"] + terms["contrastive"])
        terms["loss"].backward()
        assert model.forecast_head.weight.grad is None  # stage 1 never touches the forecaster
    terms = model.loss(batch, model(batch))
    assert terms["loss"] > terms["mse_st"] and int(model.pretrained_steps) == 2
    assert "pretrained_steps" in model.state_dict()  # the stage survives a checkpoint and a resume
