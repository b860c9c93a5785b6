"""Recurrent pieces of the frame-by-frame video models (PredRNN, MIM, MAU), written once.

All three fold each frame space-to-depth (``fold_frames``), read the history one frame at a
time and then feed back their own predictions (``roll_out``), and unfold the forecast.
The ST-LSTM cell is PredRNN's; MIM stacks MIM blocks on the same cell. The two models'
checkpoints name the cell's convolutions differently, so each names them in
``conv_names``; the parameters, their order and the arithmetic are the same.

They also share the authors' training objective (``FrameRecurrentForecaster``): every step
predicts the next frame, so the predictions made while reading the history can be scored too
(``history_loss``), and the true future frame can be fed in place of the model's own
prediction with a probability that decays over training (scheduled sampling). Without them a
deep recurrent stack fed only its own predictions and scored on the forecast alone can settle
on each cell's mean: MIM at its recipe did on bikenyc1-60d.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from stvfm.errors import ConfigError
from stvfm.models.base import Forecaster, ModelConfig, observed_mean
from stvfm.models.patching import pad_grid
from stvfm.shape import ForecastShape


def fold_frames(frames: torch.Tensor, patch: int, fill: float, multiple: int | None = None) -> torch.Tensor:
    """(B, T, C, H, W) -> (B, T, C*patch*patch, H'/patch, W'/patch): the grid padded with ``fill``
    to a multiple of ``multiple`` (default ``patch``; a multiple of it), then space-to-depth."""
    batch, steps = frames.shape[:2]
    padded = pad_grid(frames, multiple or patch, fill).flatten(0, 1)
    return F.pixel_unshuffle(padded, patch).unflatten(0, (batch, steps))


def unfold_frames(folded: torch.Tensor, patch: int, height: int, width: int) -> torch.Tensor:
    """Inverse of ``fold_frames``, cropped back to the (``height``, ``width``) grid."""
    batch, steps = folded.shape[:2]
    frames = F.pixel_shuffle(folded.flatten(0, 1), patch).unflatten(0, (batch, steps))
    return frames[..., :height, :width]


def roll_out(history: torch.Tensor, horizon: int, advance: Callable[[torch.Tensor, int], torch.Tensor],
             future: torch.Tensor | None = None, true_probability: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, P, ...) history -> ((B, P-1, ...) next-frame predictions made while reading the history,
    (B, Q, ...) forecast). ``advance(frame, step)`` reads the history frames, then its own previous
    prediction, and returns the next frame (the model keeps its state). Given the true ``future``,
    each sample is fed its true frame instead of its prediction with ``true_probability``."""
    steps = history.shape[1]
    predictions = []
    prediction = history[:, 0]
    for step in range(steps + horizon - 1):
        if step < steps:
            frame = history[:, step]
        elif future is not None and true_probability > 0:
            shape = (prediction.shape[0],) + (1,) * (prediction.dim() - 1)
            use_true = (torch.rand(shape, device=prediction.device) < true_probability).to(prediction.dtype)
            frame = use_true * future[:, step - steps] + (1 - use_true) * prediction
        else:
            frame = prediction
        prediction = advance(frame, step)
        predictions.append(prediction)
    every = torch.stack(predictions, dim=1)
    return every[:, : steps - 1], every[:, steps - 1 :]


@dataclass(frozen=True)
class FrameRecurrentConfig(ModelConfig):
    """The training objective PredRNN, MIM and MAU share (their authors' code has both)."""

    #: Training iterations over which the probability of feeding the true future frame instead of the
    #: model's own prediction decays linearly from 1 to 0 (authors: 50000); 0 = always its own.
    scheduled_sampling_iterations: int = 0
    #: The same decay over this many epochs of training instead (the trainer's count, fractions included):
    #: the authors' 50000 iterations end at about epoch 40 of OpenSTL's 50 on TaxiBJ, but would outlast
    #: a small grid's whole schedule (63 iterations an epoch on bikenyc1-60d) and leave it teacher-forced.
    scheduled_sampling_epochs: float = 0.0
    #: Also score the next-frame predictions made while reading the history: the loss is the MSE over
    #: every frame after the first, as the authors train; the forecast's MSE is still what selects.
    history_loss: bool = False

    non_negative = ("scheduled_sampling_iterations", "scheduled_sampling_epochs")
    #: Options added after runs were recorded: at their default they leave ledger record names as they were.
    ADDED_LATER: ClassVar[tuple[str, ...]] = ("scheduled_sampling_iterations", "history_loss",
                                              "scheduled_sampling_epochs")

    def validate(self) -> None:
        super().validate()
        if self.scheduled_sampling_iterations and self.scheduled_sampling_epochs:
            raise ConfigError("give scheduled sampling's length once: scheduled_sampling_iterations or "
                              "scheduled_sampling_epochs, not both")


class FrameRecurrentForecaster(Forecaster):
    """A frame-by-frame recurrent model trained with the shared objective. ``roll`` runs ``advance``
    over a batch's folded frames and returns the model's outputs."""

    #: Whether checkpoints hold the iteration count even with scheduled sampling off (PredRNN's always did).
    counts_iterations_always: ClassVar[bool] = False

    def __init__(self, shape: ForecastShape, config: FrameRecurrentConfig):
        super().__init__(shape, config)
        if self.counts_iterations_always or config.scheduled_sampling_iterations:
            self.register_buffer("training_iterations", torch.zeros((), dtype=torch.long))

    def _true_frame_probability(self) -> float:
        """Probability of feeding the true future frame now (0 when sampling is off, and at evaluation)."""
        if not self.training:
            return 0.0
        if self.config.scheduled_sampling_epochs:
            return max(0.0, 1.0 - self.epochs_trained / self.config.scheduled_sampling_epochs)
        total = self.config.scheduled_sampling_iterations
        return max(0.0, 1.0 - float(self.training_iterations) / total) if total else 0.0

    def zero_state(self, batch: dict[str, torch.Tensor], channels: int, multiple: int) -> torch.Tensor:
        """A zero state of ``channels`` on the grid padded to ``multiple`` and divided by it."""
        return batch["x"].new_zeros(batch["x"].shape[0], channels, -(-self.shape.height // multiple),
                                    -(-self.shape.width // multiple))

    def roll(self, batch: dict[str, torch.Tensor], patch: int, advance: Callable[[torch.Tensor, int], torch.Tensor],
             multiple: int | None = None) -> dict[str, torch.Tensor]:
        """Folds the batch's frames by ``patch`` (the grid padded to ``multiple``), runs ``advance`` over
        them and unfolds its predictions into the model's outputs."""
        def fold(frames: torch.Tensor) -> torch.Tensor:
            return fold_frames(frames, patch, self.shape.scaled_zero, multiple)

        def unfold(folded: torch.Tensor) -> torch.Tensor:
            return unfold_frames(folded, patch, self.shape.height, self.shape.width)

        true_probability = self._true_frame_probability() if "y" in batch else 0.0
        future = fold(batch["y"]) if true_probability > 0 else None
        if self.training and "y" in batch and self.config.scheduled_sampling_iterations:
            self.training_iterations += 1
        read, forecast = roll_out(fold(batch["x"]), self.shape.horizon, advance, future, true_probability)
        return {"forecast": unfold(forecast), "history_forecast": unfold(read)}

    def loss(self, batch: dict[str, torch.Tensor], outputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        terms = super().loss(batch, outputs)
        if not self.config.history_loss:
            return terms
        history_targets = batch["x"][:, 1:].float()
        errors = torch.cat([(outputs["history_forecast"].float() - history_targets) ** 2,
                            (outputs["forecast"].float() - batch["y"].float()) ** 2], dim=1)
        x_observed, y_observed = batch.get("x_observed"), batch.get("y_observed")
        observed = None
        if x_observed is not None or y_observed is not None:
            observed = torch.cat([x_observed[:, 1:] if x_observed is not None else torch.ones_like(history_targets, dtype=torch.bool),
                                  y_observed if y_observed is not None else torch.ones_like(batch["y"], dtype=torch.bool)], dim=1)
        return {**terms, "loss": observed_mean(errors, observed)}


def same_conv(in_channels: int, out_channels: int, kernel: int, bias: bool = True) -> nn.Conv2d:
    """A convolution that keeps the grid size (odd ``kernel``)."""
    return nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=bias)


def lstm_update(state: torch.Tensor, input_gate: torch.Tensor, forget_gate: torch.Tensor,
                candidate: torch.Tensor, forget_bias: float = 1.0) -> torch.Tensor:
    """The LSTM memory update ``sigmoid(f + bias) * state + sigmoid(i) * tanh(g)`` from gate pre-activations."""
    return torch.sigmoid(forget_gate + forget_bias) * state + torch.sigmoid(input_gate) * torch.tanh(candidate)


def zigzag_hidden(output_gate: torch.Tensor, cell: torch.Tensor, memory: torch.Tensor,
                  output_conv: nn.Module, fuse: nn.Module) -> torch.Tensor:
    """The hidden state read out of both memories: ``sigmoid(o + W[C, M]) * tanh(1x1[C, M])``."""
    both = torch.cat([cell, memory], dim=1)
    return torch.sigmoid(output_gate + output_conv(both)) * torch.tanh(fuse(both))


class SpatioTemporalLSTMCell(nn.Module):
    """ST-LSTM: a standard ConvLSTM update of C plus a second gated update of the zigzag memory M."""

    #: Names of the input, hidden, memory, output and fusing convolutions, as checkpoints hold them.
    conv_names = ("from_input", "from_hidden", "from_memory", "output_from_memories", "fuse_memories")

    def __init__(self, in_channels: int, hidden: int, kernel: int, bias: bool = True, forget_bias: float = 1.0):
        super().__init__()
        self.hidden = hidden
        self.forget_bias = forget_bias
        convs = (
            same_conv(in_channels, hidden * 7, kernel, bias),
            same_conv(hidden, hidden * 4, kernel, bias),
            same_conv(hidden, hidden * 3, kernel, bias),
            same_conv(hidden * 2, hidden, kernel, bias),
            nn.Conv2d(hidden * 2, hidden, 1, bias=bias),
        )
        for name, conv in zip(self.conv_names, convs, strict=True):
            self.add_module(name, conv)

    def forward(
        self, inputs: torch.Tensor, hidden: torch.Tensor, cell: torch.Tensor, memory: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        from_input, from_hidden, from_memory, output_conv, fuse = (getattr(self, name) for name in self.conv_names)
        i_x, f_x, g_x, i_xm, f_xm, g_xm, o_x = torch.split(from_input(inputs), self.hidden, dim=1)
        i_h, f_h, g_h, o_h = torch.split(from_hidden(hidden), self.hidden, dim=1)
        i_m, f_m, g_m = torch.split(from_memory(memory), self.hidden, dim=1)
        cell = lstm_update(cell, i_x + i_h, f_x + f_h, g_x + g_h, self.forget_bias)
        memory = lstm_update(memory, i_xm + i_m, f_xm + f_m, g_xm + g_m, self.forget_bias)
        return zigzag_hidden(o_x + o_h, cell, memory, output_conv, fuse), cell, memory
