"""Recurrent pieces of the frame-by-frame video models (PredRNN, MIM, MAU), written once.

The ST-LSTM cell is PredRNN's; MIM stacks MIM blocks on the same cell. The two models'
checkpoints name the cell's convolutions differently, so each names them in
``conv_names``; the parameters, their order and the arithmetic are the same.
"""

from __future__ import annotations

import torch
from torch import nn


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
