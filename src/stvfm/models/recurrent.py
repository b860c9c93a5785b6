"""Recurrent pieces of the frame-by-frame video models (PredRNN, MIM, MAU), written once.

All three fold each frame space-to-depth (``fold_frames``), read the history one frame at a
time and then feed back their own predictions (``roll_out``), and unfold the forecast.
The ST-LSTM cell is PredRNN's; MIM stacks MIM blocks on the same cell. The two models'
checkpoints name the cell's convolutions differently, so each names them in
``conv_names``; the parameters, their order and the arithmetic are the same.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from stvfm.models.patching import pad_grid


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


def roll_out(history: torch.Tensor, horizon: int,
             advance: Callable[[torch.Tensor, int], torch.Tensor]) -> torch.Tensor:
    """(B, P, ...) history -> (B, Q, ...) forecast: ``advance(frame, step)`` reads the history
    frames, then its own previous prediction, and returns the next frame (the model keeps its
    state); the predictions from the last history step on are the forecast."""
    steps = history.shape[1]
    predictions = []
    prediction = history[:, 0]
    for step in range(steps + horizon - 1):
        prediction = advance(history[:, step] if step < steps else prediction, step)
        if step >= steps - 1:
            predictions.append(prediction)
    return torch.stack(predictions, dim=1)


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
