"""Speed-ups change time, not numbers: frozen bf16 weights and a compiled backbone give the same forecasts."""

from __future__ import annotations

import pytest
import torch

from stvfm.errors import ConfigError
from stvfm.models import create_model
from stvfm.shape import ForecastShape
from stvfm.testing import make_batch
from stvfm.training.speed import cast_frozen_linears, compile_backbone

SHAPE = ForecastShape(height=4, width=4)
TINY = {"backbone": "tiny", "weights": "random", "temporal_dim": 16, "temporal_heads": 2, "encoder_layers": 1,
        "decoder_layers": 1}


def tiny_model(**options) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("stvfm", SHAPE, **TINY, **options).eval()


def forecast(model, batch) -> torch.Tensor:
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        return model.predict(batch).float()


def test_frozen_bf16_weights_give_the_same_bf16_forecast():
    model, batch = tiny_model(), make_batch(SHAPE, 2)
    before = forecast(model, batch)
    assert cast_frozen_linears(model, torch.bfloat16) > 0
    assert torch.equal(forecast(model, batch), before)
    assert all(p.dtype == torch.float32 for p in model.parameters() if p.requires_grad)


def test_a_trained_backbone_is_not_cast():
    model = tiny_model(train_backbone=True)
    cast_frozen_linears(model, torch.bfloat16)
    assert {p.dtype for p in model.backbone.parameters()} == {torch.float32}


def test_compiled_backbone_keeps_checkpoint_keys_and_forecasts_and_trains():
    """The one test that pays for compiling (the bench's compiled mode is checked with a stand-in compile).
    Gradients stay on throughout, so the forecast and the training step share one compiled graph."""
    model, batch = tiny_model(), make_batch(SHAPE, 2)
    keys = set(model.state_dict())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        before = model.predict(batch).float().detach()
    compile_backbone(model)
    assert set(model.state_dict()) == keys
    with torch.autocast("cpu", dtype=torch.bfloat16):  # as the bench's compiled mode trains: bf16 autocast
        output = model(batch)
        loss = model.loss(batch, output)["loss"]
    torch.testing.assert_close(output["forecast"].float().detach(), before, atol=2e-2, rtol=2e-2)
    loss.backward()  # through the compiled ViT to the adapters inside it
    adapters = [p.grad for p in model.backbone.adapters.parameters()]
    assert adapters and all(grad is not None and torch.isfinite(grad).all() for grad in adapters)
    assert any(grad.abs().sum() > 0 for grad in adapters)


def test_compiling_a_model_without_backbone_is_a_config_error():
    with pytest.raises(ConfigError, match="no vision backbone"):
        compile_backbone(create_model("stid", SHAPE))


@pytest.mark.parametrize("flags, expected", [({"avx2", "avx512_bf16"}, "bf16"), ({"avx2", "amx_bf16"}, "bf16"),
                                             ({"avx2", "fma"}, "32"), (set(), "32")])
def test_auto_precision_is_bf16_only_where_the_cpu_computes_it_natively(monkeypatch, tmp_path, flags, expected):
    from stvfm import host
    from stvfm.training.config import RunConfig

    monkeypatch.setattr(host, "cpu_flags", lambda: flags)
    run = RunConfig(model="stid", dataset="city", out=str(tmp_path), precision="auto", accelerator="cpu")
    assert run.precision == expected  # what ran is recorded, never "auto"
    assert RunConfig.from_dict(run.to_dict()).identity() == run.identity()


def test_bf16_asked_for_where_it_is_emulated_is_warned_about(monkeypatch, tmp_path):
    from stvfm import host
    from stvfm.training.config import RunConfig
    from stvfm.training.runner import _speed_up

    run = RunConfig(model="stvfm", dataset="city", out=str(tmp_path), precision="bf16", accelerator="cpu")
    monkeypatch.setattr(host, "cpu_flags", lambda: {"avx2"})
    with pytest.warns(UserWarning, match="emulated"):
        _speed_up(tiny_model(), run)
