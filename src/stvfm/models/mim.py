"""MIM: Memory In Memory (Wang, Zhang, Zhu, Long, Wang, Yu; CVPR 2019).

The first layer is PredRNN's spatio-temporal LSTM; every layer above is a MIM block whose
forget gate is replaced by two cascaded recurrent modules: MIM-N models the non-stationary
part from the difference of consecutive hidden states of the layer below, MIM-S the
stationary part from MIM-N's output and the previous cell state. A spatial memory M runs
zigzag: up through the layers within a step, then from the top layer to the bottom layer
of the next step. After the history the model feeds back its own predictions.

Departures from the paper:
- Frames are folded to ``patch x patch`` channels first (space-to-depth, as the authors'
  code does) after padding the grid to a multiple of the patch; the forecast is cropped back.
- By default training feeds back the model's own predictions and scores the forecast steps
  only; scheduled sampling (``scheduled_sampling_epochs`` or ``_iterations``) and ``history_loss``
  give the authors' objective (the recipe's: without it MIM settled on each cell's mean on
  bikenyc1-60d).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from stvfm.errors import ConfigError
from stvfm.models.recurrent import (
    FrameRecurrentConfig,
    FrameRecurrentForecaster,
    SpatioTemporalLSTMCell,
    lstm_update,
    same_conv,
    zigzag_hidden,
)
from stvfm.models.registry import register_model
from stvfm.shape import ForecastShape


@dataclass(frozen=True)
class MIMConfig(FrameRecurrentConfig):
    #: Recurrent layers: one ST-LSTM followed by ``num_layers - 1`` MIM blocks (at least 2).
    num_layers: int = 3
    #: Channels of every hidden state and memory.
    hidden: int = 32
    #: Kernel size of every recurrent convolution.
    kernel: int = 3
    #: Space-to-depth factor applied to frames before the recurrent stack.
    patch: int = 2

    positive = ("hidden", "kernel", "patch")

    def validate(self) -> None:
        super().validate()
        if self.num_layers < 2:
            raise ConfigError("mim needs num_layers >= 2 (one ST-LSTM plus at least one MIM block)")


class MIMBottomCell(SpatioTemporalLSTMCell):
    """PredRNN's ST-LSTM as MIM's bottom layer, which writes the zigzag memory first each step."""

    conv_names = ("input_conv", "hidden_conv", "memory_conv", "output_conv", "fuse")


class RecurrentGateModule(nn.Module):
    """The LSTM-like cell shared by MIM-N and MIM-S: gates from an input and a recurrent state.

    MIM-N reads the hidden-state difference of the layer below and its own previous output;
    MIM-S reads MIM-N's output and the block's previous cell state. Both return
    ``(output, memory)``.
    """

    def __init__(self, hidden: int, kernel: int):
        super().__init__()
        self.input_conv = same_conv(hidden, 4 * hidden, kernel)
        self.state_conv = same_conv(hidden, 4 * hidden, kernel)

    def forward(self, x, state, memory):
        i, f, g, o = (self.input_conv(x) + self.state_conv(state)).chunk(4, dim=1)
        memory = lstm_update(memory, i, f, g)
        return torch.sigmoid(o) * torch.tanh(memory), memory


class MIMBlock(nn.Module):
    """ST-LSTM whose forget path ``f * C`` is replaced by the MIM-N -> MIM-S cascade."""

    def __init__(self, hidden: int, kernel: int):
        super().__init__()
        self.input_conv = same_conv(hidden, 6 * hidden, kernel)
        self.hidden_conv = same_conv(hidden, 3 * hidden, kernel)
        self.memory_conv = same_conv(hidden, 3 * hidden, kernel)
        self.output_conv = same_conv(2 * hidden, hidden, kernel)
        self.fuse = nn.Conv2d(2 * hidden, hidden, 1)
        self.non_stationary = RecurrentGateModule(hidden, kernel)
        self.stationary = RecurrentGateModule(hidden, kernel)

    def forward(self, x, below_difference, hidden, cell, memory, diff_state, diff_memory, stationary_memory):
        i_x, g_x, o_x, i_xm, f_xm, g_xm = self.input_conv(x).chunk(6, dim=1)
        i_h, g_h, o_h = self.hidden_conv(hidden).chunk(3, dim=1)
        i_m, f_m, g_m = self.memory_conv(memory).chunk(3, dim=1)
        diff_state, diff_memory = self.non_stationary(below_difference, diff_state, diff_memory)
        transition, stationary_memory = self.stationary(diff_state, cell, stationary_memory)
        cell = transition + torch.sigmoid(i_x + i_h) * torch.tanh(g_x + g_h)
        memory = lstm_update(memory, i_xm + i_m, f_xm + f_m, g_xm + g_m)
        hidden = zigzag_hidden(o_x + o_h, cell, memory, self.output_conv, self.fuse)
        return hidden, cell, memory, diff_state, diff_memory, stationary_memory


@register_model("mim", MIMConfig)
class MIM(FrameRecurrentForecaster):
    """MIM (CVPR 2019): stacked memory-in-memory blocks for non-stationary dynamics."""

    def __init__(self, shape: ForecastShape, config: MIMConfig):
        super().__init__(shape, config)
        frame_channels = shape.channels * config.patch**2
        self.bottom = MIMBottomCell(frame_channels, config.hidden, config.kernel)
        self.blocks = nn.ModuleList(MIMBlock(config.hidden, config.kernel) for _ in range(config.num_layers - 1))
        self.head = nn.Conv2d(config.hidden, frame_channels, 1)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        patch = self.config.patch
        zeros = self.zero_state(batch, self.config.hidden, patch)
        layers = self.config.num_layers
        hidden = [zeros] * layers
        cell = [zeros] * layers
        # Per MIM block: MIM-N output and memory, MIM-S memory.
        diff_state = [zeros] * (layers - 1)
        diff_memory = [zeros] * (layers - 1)
        stationary_memory = [zeros] * (layers - 1)
        memory = zeros

        def advance(frame: torch.Tensor, step: int) -> torch.Tensor:
            nonlocal hidden, memory
            previous_hidden = hidden
            hidden = list(hidden)
            hidden[0], cell[0], memory = self.bottom(frame, hidden[0], cell[0], memory)
            for index, block in enumerate(self.blocks, start=1):
                below_difference = hidden[index - 1] - previous_hidden[index - 1] if step > 0 else zeros
                (hidden[index], cell[index], memory, diff_state[index - 1], diff_memory[index - 1],
                 stationary_memory[index - 1]) = block(
                    hidden[index - 1], below_difference, hidden[index], cell[index], memory,
                    diff_state[index - 1], diff_memory[index - 1], stationary_memory[index - 1],
                )
            return self.head(hidden[-1])

        return self.roll(batch, patch, advance)
