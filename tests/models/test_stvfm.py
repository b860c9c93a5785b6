"""ST-VFM: shapes of every variant, the frozen VFM, the flow, eq. 10, and learning."""

from __future__ import annotations

import math

import pytest
import torch

from stvfm.backbones import VisionBackbone, add_adapters, create_backbone
from stvfm.errors import ConfigError
from stvfm.models.stvfm import (
    STVFM,
    VARIANTS,
    CrossPromptAttention,
    CrossPromptBlock,
    STVFMConfig,
    flow_target,
    st_flow,
)
from stvfm.shape import ForecastShape
from stvfm.testing import overfit_losses


def tiny_backbone(is_video: bool = False) -> VisionBackbone:
    torch.manual_seed(0)
    backbone = create_backbone("tiny", weights="random")
    backbone.is_video = is_video
    return backbone


def build(shape: ForecastShape, variant: str = "full", is_video: bool = False, **overrides) -> STVFM:
    options = dict(variant=variant, temporal_dim=16, temporal_heads=2, encoder_layers=1, decoder_layers=1, dropout=0.0)
    backbone = tiny_backbone(is_video)
    torch.manual_seed(0)
    return STVFM(shape, STVFMConfig(**{**options, **overrides}), backbone=backbone)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_forecasts_the_right_shape(variant, tiny_shape, batch_factory):
    batch = batch_factory(tiny_shape, batch_size=2)
    model = build(tiny_shape, variant)
    outputs = model(batch)
    assert outputs["forecast"].shape == batch["y"].shape
    assert ("flow_forecast" in outputs) == (variant == "full")
    if variant == "full":
        assert outputs["flow_forecast"].shape == batch["y"].shape
    terms = model.loss(batch, outputs)
    assert set(terms) == ({"loss", "mse_st", "mse_flow"} if variant == "full" else {"loss", "mse_st"})
    assert torch.isfinite(terms["loss"])
    assert model.predict(batch).shape == batch["y"].shape


def test_vfm_stays_frozen_and_only_adapters_of_it_learn(tiny_shape, batch_factory):
    batch = batch_factory(tiny_shape, batch_size=2)
    model = build(tiny_shape, "full")
    adapter_ids = {id(p) for p in model.adapters.parameters()}
    frozen = [p for p in model.backbone.parameters() if id(p) not in adapter_ids]
    assert frozen and not any(p.requires_grad for p in frozen)

    model.train()
    assert not any(module.training for module in model.backbone.modules())
    assert model.decoders["st"].training

    model.loss(batch, model(batch))["loss"].backward()
    assert all(p.grad is None for p in frozen)
    assert all(p.grad is not None for p in model.adapters.parameters())
    assert any(p.grad.abs().sum() > 0 for p in model.adapters.parameters())

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert not optimized & {id(p) for p in frozen}
    assert adapter_ids <= optimized

    trainable, frozen_count = model.parameter_counts()
    assert frozen_count == sum(p.numel() for p in frozen)
    assert trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_adapters_at_init_leave_the_vfm_output_unchanged():
    backbone = tiny_backbone().eval()
    tokens = torch.randn(3, 5, backbone.width)
    with torch.no_grad():
        before = backbone(tokens)
        add_adapters(backbone, 0.25)
        after = backbone(tokens)
    torch.testing.assert_close(after, before)


def test_flow_is_the_first_difference_and_its_target_starts_from_the_last_input():
    x = torch.tensor([1.0, 4.0, 2.0]).view(1, 3, 1, 1, 1)
    y = torch.tensor([3.0, 7.0]).view(1, 2, 1, 1, 1)
    assert st_flow(x).flatten().tolist() == [0.0, 3.0, -2.0]
    assert flow_target(x, y).flatten().tolist() == [1.0, 4.0]


def test_cross_prompt_attention_is_one_softmax_over_own_and_prompt_keys():
    """Eq. 10 written out by hand for one head."""
    torch.manual_seed(0)
    attention = CrossPromptAttention(dim=8, heads=1)
    tokens, prompts = torch.randn(2, 5, 8), torch.randn(2, 3, 8)
    query, key, value = attention.qkv(tokens).chunk(3, dim=-1)
    prompt_key, prompt_value = attention.prompt_kv(prompts).chunk(2, dim=-1)
    logits = torch.cat([query @ key.transpose(1, 2), query @ prompt_key.transpose(1, 2)], dim=-1) / math.sqrt(8)
    expected = attention.out(logits.softmax(dim=-1) @ torch.cat([value, prompt_value], dim=1))
    torch.testing.assert_close(attention(tokens, prompts), expected)


def test_cross_prompt_block_is_symmetric_and_pools_prompts():
    torch.manual_seed(0)
    block = CrossPromptBlock(dim=8, heads=2, prompt_tokens=2, dropout=0.0)
    st, flow = torch.randn(4, 6, 8), torch.randn(4, 6, 8)
    new_st, new_flow = block(st, flow)
    assert new_st.shape == st.shape and new_flow.shape == flow.shape
    assert block.prompts(flow).shape == (4, 2, 8)
    torch.testing.assert_close(new_flow, block.flow(flow, block.prompts(st)))


def test_full_model_learns_one_batch(tiny_shape, batch_factory):
    batch = batch_factory(tiny_shape, batch_size=2)
    first, last = overfit_losses(build(tiny_shape, "full"), batch, steps=15)
    assert last < 0.8 * first


def test_grid_not_divisible_by_the_patch_is_padded_and_cropped(batch_factory):
    shape = ForecastShape(history=4, horizon=3, channels=2, height=5, width=3, slots_per_day=24)
    batch = batch_factory(shape, batch_size=2)
    model = build(shape, "full", prompt_tokens=2)
    outputs = model(batch)
    assert outputs["forecast"].shape == (2, 3, 2, 5, 3)
    assert outputs["flow_forecast"].shape == (2, 3, 2, 5, 3)


@pytest.mark.parametrize("variant", ["full", "simple"])
def test_video_backbone_sees_all_frames_in_one_sequence(variant, tiny_shape, batch_factory):
    batch = batch_factory(tiny_shape, batch_size=2)
    model = build(tiny_shape, variant, is_video=True)
    seen = []
    model.backbone.register_forward_hook(lambda module, args, out: seen.append(args[0].shape))
    assert model(batch)["forecast"].shape == batch["y"].shape
    tokens_per_frame = (tiny_shape.height // 2) * (tiny_shape.width // 2)
    branches = 2 if variant == "full" else 1
    assert seen == [(branches * 2, tiny_shape.history * tokens_per_frame, model.backbone.width)]


def test_image_backbone_sees_both_branches_in_one_call(tiny_shape, batch_factory):
    batch = batch_factory(tiny_shape, batch_size=2)
    model = build(tiny_shape, "full")
    seen = []
    model.backbone.register_forward_hook(lambda module, args, out: seen.append(args[0].shape))
    model(batch)
    assert seen == [(2 * 2 * tiny_shape.history, 6, model.backbone.width)]


def test_config_rejects_unknown_variant_and_bad_heads():
    with pytest.raises(ConfigError):
        STVFMConfig(variant="nope")
    with pytest.raises(ConfigError):
        STVFMConfig(temporal_dim=10, temporal_heads=4)
    with pytest.raises(ConfigError):
        STVFMConfig(calendar_init_std=-1.0)


def test_calendar_init_std_only_scales_the_calendar_tables(tiny_shape):
    unit, small = build(tiny_shape, calendar_init_std=1.0), build(tiny_shape, calendar_init_std=0.02)
    small_state = small.state_dict()
    for name, value in unit.state_dict().items():
        expected = value * 0.02 if ".calendar." in name else value
        torch.testing.assert_close(small_state[name], expected, rtol=0, atol=0, msg=name)
    assert any(".calendar." in name for name in small_state)


@pytest.mark.parametrize("variant", ["token-adapt", "full"])
def test_with_calendar_off_the_forecast_ignores_the_time_features(variant, tiny_shape, batch_factory):
    batch = batch_factory(tiny_shape, batch_size=2)
    other_times = {**batch, "x_time": batch["x_time"].roll(1, dims=0), "y_time": (batch["y_time"] + 3) % 7}
    on, off = build(tiny_shape, variant, calendar_init_std=1.0).eval(), build(tiny_shape, variant, calendar=False).eval()
    with torch.no_grad():
        assert not torch.allclose(on(batch)["forecast"], on(other_times)["forecast"])
        torch.testing.assert_close(off(batch)["forecast"], off(other_times)["forecast"], rtol=0, atol=0)
    # on (the default) keeps the parameter names old checkpoints hold; off has no calendar tables at all
    names = set(on.state_dict())
    assert {"decoders.st.calendar.weekday.weight", "decoders.st.calendar.slot.weight"} <= names
    assert set(off.state_dict()) == {name for name in names if ".calendar." not in name}


def test_registry_builds_stvfm_with_its_own_backbone(tiny_shape, batch_factory):
    from stvfm.models import create_model

    model = create_model("stvfm", tiny_shape, backbone="tiny", weights="random", temporal_dim=16, temporal_heads=2,
                         encoder_layers=1, decoder_layers=1, backbone_overrides={"num_hidden_layers": 1})
    assert model.backbone.depth == 1 and len(model.adapters) == 1
    assert model(batch_factory(tiny_shape, batch_size=1))["forecast"].shape == (1, 6, 1, 6, 4)


def test_grid_values_in_and_forecasts_out_stay_fp32_under_bf16_autocast(tiny_shape, batch_factory):
    batch = batch_factory(tiny_shape, batch_size=2)
    model = build(tiny_shape, "full").eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = model(batch)
    assert outputs["forecast"].dtype == torch.float32 and outputs["flow_forecast"].dtype == torch.float32
    # a forecast value bf16 cannot represent survives (it would be rounded to 2^-8 steps otherwise)
    rounded = outputs["forecast"].to(torch.bfloat16).float()
    assert not torch.equal(outputs["forecast"], rounded)


def test_fast_cpu_dropout_keeps_the_rate_scales_the_kept_and_is_seeded(tiny_shape):
    from torch import nn

    from stvfm.models.layers import FastCPUDropout

    layer = FastCPUDropout(0.1).train()
    inputs = torch.ones(1000, 401)  # not a multiple of four elements
    torch.manual_seed(3)
    out = layer(inputs)
    kept = out != 0
    assert kept.float().mean().item() == pytest.approx(0.9, abs=0.003)
    assert torch.allclose(out[kept], torch.full_like(out[kept], 1 / 0.9))
    torch.manual_seed(3)
    assert torch.equal(layer(inputs), out)  # the seeded CPU generator decides the mask
    inputs.requires_grad_(True)
    again = layer(inputs)
    again.sum().backward()
    assert torch.equal(inputs.grad != 0, again != 0)  # gradient flows only through the kept
    assert torch.equal(layer.eval()(inputs), inputs)
    # every plain dropout of ST-VFM's trained parts is the fast one (attention-weight dropout aside)
    model = STVFM(tiny_shape, STVFMConfig(backbone="tiny", weights="random", variant="full"))
    trained = [model.token_adapters, model.cross_prompts, model.decoders]
    assert not [m for part in trained for m in part.modules() if type(m) is nn.Dropout]
    assert any(isinstance(m, FastCPUDropout) for part in trained for m in part.modules())


def test_highway_starts_as_the_papers_model_and_then_learns_a_linear_map_of_each_cells_history(tiny_shape, batch_factory):
    batch = batch_factory(tiny_shape)
    plain, highway = build(tiny_shape), build(tiny_shape, highway=True)
    highway.load_state_dict(plain.state_dict(), strict=False)  # the same weights but for the highway's
    torch.testing.assert_close(highway(batch)["forecast"], plain(batch)["forecast"])  # zero-initialised
    with torch.no_grad():
        highway.highway.weight[:, -1] = 1.0  # every future step: the cell's last history value, added
    added = highway(batch)["forecast"] - plain(batch)["forecast"]
    torch.testing.assert_close(added, batch["x"][:, -1:].float().expand_as(added))
    highway.highway.weight.data.zero_()
    highway(batch)["forecast"].sum().backward()
    assert highway.highway.weight.grad.abs().sum() > 0
