"""PredRNN, MIM and MAU share their recurrent cells and conv helper (``stvfm.models.recurrent``);
the sharing must not change a checkpoint or a forecast.

The state-dict keys, their order and shapes, and the forecast sums below were recorded from
the code before the cells moved (commit e8e2316): old checkpoints still load, and the same
seed still gives the same model.
"""

from __future__ import annotations

import pytest
import torch

from stvfm.errors import ConfigError
from stvfm.models import ForecastShape, create_model
from stvfm.models.recurrent import fold_frames, roll_out, unfold_frames
from stvfm.testing import make_batch

# padded with 0 as the recording was (the scaled value of 0 counts is a data property; see test_padding.py)
SHAPE = ForecastShape(history=3, horizon=2, channels=2, height=5, width=3, slots_per_day=24, scaled_zero=0.0)

#: name: (options, state-dict keys with shapes in order, (sum, sum of absolute values) of the forecast)
RECORDED = {
    "predrnn": (
        {"layers": 2, "hidden": 4, "kernel": 3},
        [
            ("training_iterations", ()),
            ("cells.0.from_input.weight", (28, 8, 3, 3)),
            ("cells.0.from_hidden.weight", (16, 4, 3, 3)),
            ("cells.0.from_memory.weight", (12, 4, 3, 3)),
            ("cells.0.output_from_memories.weight", (4, 8, 3, 3)),
            ("cells.0.fuse_memories.weight", (4, 8, 1, 1)),
            ("cells.1.from_input.weight", (28, 4, 3, 3)),
            ("cells.1.from_hidden.weight", (16, 4, 3, 3)),
            ("cells.1.from_memory.weight", (12, 4, 3, 3)),
            ("cells.1.output_from_memories.weight", (4, 8, 3, 3)),
            ("cells.1.fuse_memories.weight", (4, 8, 1, 1)),
            ("readout.weight", (8, 4, 1, 1)),
        ],
        (-0.23185596682014875, 1.0279301941336598),
    ),
    "mim": (
        {"num_layers": 2, "hidden": 4},
        [
            ("bottom.input_conv.weight", (28, 8, 3, 3)),
            ("bottom.input_conv.bias", (28,)),
            ("bottom.hidden_conv.weight", (16, 4, 3, 3)),
            ("bottom.hidden_conv.bias", (16,)),
            ("bottom.memory_conv.weight", (12, 4, 3, 3)),
            ("bottom.memory_conv.bias", (12,)),
            ("bottom.output_conv.weight", (4, 8, 3, 3)),
            ("bottom.output_conv.bias", (4,)),
            ("bottom.fuse.weight", (4, 8, 1, 1)),
            ("bottom.fuse.bias", (4,)),
            ("blocks.0.input_conv.weight", (24, 4, 3, 3)),
            ("blocks.0.input_conv.bias", (24,)),
            ("blocks.0.hidden_conv.weight", (12, 4, 3, 3)),
            ("blocks.0.hidden_conv.bias", (12,)),
            ("blocks.0.memory_conv.weight", (12, 4, 3, 3)),
            ("blocks.0.memory_conv.bias", (12,)),
            ("blocks.0.output_conv.weight", (4, 8, 3, 3)),
            ("blocks.0.output_conv.bias", (4,)),
            ("blocks.0.fuse.weight", (4, 8, 1, 1)),
            ("blocks.0.fuse.bias", (4,)),
            ("blocks.0.non_stationary.input_conv.weight", (16, 4, 3, 3)),
            ("blocks.0.non_stationary.input_conv.bias", (16,)),
            ("blocks.0.non_stationary.state_conv.weight", (16, 4, 3, 3)),
            ("blocks.0.non_stationary.state_conv.bias", (16,)),
            ("blocks.0.stationary.input_conv.weight", (16, 4, 3, 3)),
            ("blocks.0.stationary.input_conv.bias", (16,)),
            ("blocks.0.stationary.state_conv.weight", (16, 4, 3, 3)),
            ("blocks.0.stationary.state_conv.bias", (16,)),
            ("head.weight", (8, 4, 1, 1)),
            ("head.bias", (8,)),
        ],
        (-21.166651129722595, 31.986441612243652),
    ),
    "mau": (
        {"num_layers": 2, "hidden": 4, "tau": 2},
        [
            ("stem.0.weight", (4, 2, 3, 3)),
            ("stem.0.bias", (4,)),
            ("encoders.0.0.weight", (4, 4, 3, 3)),
            ("encoders.0.0.bias", (4,)),
            ("units.0.spatial_query.weight", (4, 4, 3, 3)),
            ("units.0.spatial_query.bias", (4,)),
            ("units.0.temporal_gate.weight", (4, 4, 3, 3)),
            ("units.0.temporal_gate.bias", (4,)),
            ("units.0.temporal_conv.weight", (12, 4, 3, 3)),
            ("units.0.temporal_conv.bias", (12,)),
            ("units.0.spatial_conv.weight", (12, 4, 3, 3)),
            ("units.0.spatial_conv.bias", (12,)),
            ("units.1.spatial_query.weight", (4, 4, 3, 3)),
            ("units.1.spatial_query.bias", (4,)),
            ("units.1.temporal_gate.weight", (4, 4, 3, 3)),
            ("units.1.temporal_gate.bias", (4,)),
            ("units.1.temporal_conv.weight", (12, 4, 3, 3)),
            ("units.1.temporal_conv.bias", (12,)),
            ("units.1.spatial_conv.weight", (12, 4, 3, 3)),
            ("units.1.spatial_conv.bias", (12,)),
            ("decoders.0.0.weight", (4, 4, 4, 4)),
            ("decoders.0.0.bias", (4,)),
            ("head.weight", (2, 4, 1, 1)),
            ("head.bias", (2,)),
        ],
        (28.30341762304306, 29.539978694170713),
    ),
}


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_recurrent_models_keep_their_checkpoint_keys_and_numerics(name):
    options, keys, (total, absolute) = RECORDED[name]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = create_model(name, SHAPE, **options).eval()
        forecast = model.predict(make_batch(SHAPE, batch_size=2)).double()
    finally:
        torch.set_num_threads(threads)
    assert [(key, tuple(value.shape)) for key, value in model.state_dict().items()] == keys
    torch.testing.assert_close(forecast.sum().item(), total, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(forecast.abs().sum().item(), absolute, rtol=1e-6, atol=1e-6)


def test_folding_round_trips_an_odd_grid_and_pads_with_the_fill():
    frames = torch.randn(2, 3, 2, 5, 3)
    folded = fold_frames(frames, patch=2, fill=-1.0, multiple=4)
    assert folded.shape == (2, 3, 8, 4, 2)  # 5 x 3 padded to 8 x 4, folded by 2
    padded = unfold_frames(folded, 2, 8, 4)
    assert (padded[..., 5:, :] == -1).all() and (padded[..., 3:] == -1).all()
    torch.testing.assert_close(unfold_frames(folded, 2, 5, 3), frames, rtol=0, atol=0)


def test_roll_out_reads_the_history_then_feeds_back_its_own_predictions():
    history = torch.arange(3.0).reshape(1, 3, 1)  # frames 0, 1, 2
    seen = []

    def advance(frame, step):
        seen.append((step, frame.item()))
        return frame + 10

    read, forecast = roll_out(history, horizon=3, advance=advance)
    assert seen == [(0, 0.0), (1, 1.0), (2, 2.0), (3, 12.0), (4, 22.0)]
    assert read.flatten().tolist() == [10.0, 11.0]  # next-frame predictions while reading frames 0 and 1
    assert forecast.flatten().tolist() == [12.0, 22.0, 32.0]


def test_roll_out_feeds_the_true_future_when_told_to():
    history = torch.arange(3.0).reshape(1, 3, 1)
    future = torch.tensor([[[100.0], [200.0], [300.0]]])
    seen = []

    def advance(frame, step):
        seen.append(frame.item())
        return frame + 10

    _, forecast = roll_out(history, horizon=3, advance=advance, future=future, true_probability=1.0)
    assert seen == [0.0, 1.0, 2.0, 100.0, 200.0]  # the true frames, never its own predictions
    assert forecast.flatten().tolist() == [12.0, 110.0, 210.0]


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_the_history_loss_scores_every_frame_after_the_first_and_selection_stays_on_the_forecast(name):
    options = RECORDED[name][0]
    torch.manual_seed(0)
    model = create_model(name, SHAPE, **options, history_loss=True)
    batch = make_batch(SHAPE, batch_size=2)
    outputs = model(batch)
    assert outputs["history_forecast"].shape == batch["x"][:, 1:].shape
    terms = model.loss(batch, outputs)
    every = torch.cat([outputs["history_forecast"] - batch["x"][:, 1:], outputs["forecast"] - batch["y"]], dim=1)
    torch.testing.assert_close(terms["loss"], (every**2).mean())
    torch.testing.assert_close(terms["mse_st"], ((outputs["forecast"] - batch["y"]) ** 2).mean())
    # a missing history value is not scored
    missing = dict(batch, x_observed=torch.ones_like(batch["x"], dtype=torch.bool))
    missing["x_observed"][:, 1, 0, 0, 0] = False
    expected = (every**2).flatten(1)
    kept = torch.cat([missing["x_observed"][:, 1:], torch.ones_like(batch["y"], dtype=torch.bool)], dim=1).flatten(1)
    torch.testing.assert_close(model.loss(missing, outputs)["loss"], expected[kept].mean())


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_scheduled_sampling_feeds_the_true_future_in_training_only(name):
    options = RECORDED[name][0]
    batch = make_batch(SHAPE, batch_size=2)
    other_future = dict(batch, y=torch.zeros_like(batch["y"]))
    sampled = create_model(name, SHAPE, **options, scheduled_sampling_iterations=100).train()
    assert not torch.equal(sampled(batch)["forecast"], sampled(other_future)["forecast"])
    assert int(sampled.training_iterations) == 2
    sampled.eval()
    assert torch.equal(sampled.predict(batch), sampled.predict(other_future))


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_scheduled_sampling_over_epochs_follows_the_trainers_count(name):
    model = create_model(name, SHAPE, **RECORDED[name][0], scheduled_sampling_epochs=4).train()
    assert model.state_dict().keys() == create_model(name, SHAPE, **RECORDED[name][0]).state_dict().keys()
    probabilities = []
    for epochs in (0.0, 2.0, 3.5, 4.0, 7.0):
        model.epochs_trained = epochs
        probabilities.append(model._true_frame_probability())
    assert probabilities == [1.0, 0.5, 0.125, 0.0, 0.0]
    model.epochs_trained = 0.0
    batch = make_batch(SHAPE, batch_size=2)
    assert not torch.equal(model(batch)["forecast"], model(dict(batch, y=torch.zeros_like(batch["y"])))["forecast"])
    assert model.eval()._true_frame_probability() == 0.0
    with pytest.raises(ConfigError, match="not both"):
        create_model(name, SHAPE, **RECORDED[name][0], scheduled_sampling_epochs=4, scheduled_sampling_iterations=10)
