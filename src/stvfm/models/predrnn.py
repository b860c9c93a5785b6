"""PredRNN: Wang, Long, Wang, Gao and Yu, "PredRNN: Recurrent Neural Networks for Predictive
Learning using Spatiotemporal LSTMs", NeurIPS 2017.

A stack of spatio-temporal LSTM (ST-LSTM) cells. Besides each layer's own cell state C
(carried along time), a spatio-temporal memory M zigzags through the stack: upward through
the layers within a step, then from the top layer back to the bottom one at the next step.
As in the authors' code, frames are cut into non-overlapping patches stacked along channels
(space-to-depth) before the recurrence, and each step predicts the next frame.

The model reads the P history frames, then forecasts Q frames one at a time, feeding each
prediction back as the next input: at evaluation it never sees the true future.

Departures from the paper and the authors' code:
- Scheduled sampling (feeding the true future frame with a probability decaying linearly
  from 1 to 0) is off by default: training then matches evaluation (own predictions fed
  back). ``scheduled_sampling_iterations`` > 0 turns the authors' schedule on, counted in
  iterations as they count it; ``scheduled_sampling_epochs`` counts it in epochs (the recipe's).
- The loss is the MSE of the Q forecast frames only by default; ``history_loss`` also scores
  the next-frame predictions made while reading the history, as the authors do (the recipe
  turns both on).
- No layer normalisation inside the cells (the authors' default for their benchmarks).
- Grids the patch does not divide are padded with zeros and cropped back; predictions fed
  back are zeroed on the padding so that it looks like the padded history.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from stvfm.models.recurrent import (
    FrameRecurrentConfig,
    FrameRecurrentForecaster,
    SpatioTemporalLSTMCell,
    fold_frames,
)
from stvfm.models.registry import register_model
from stvfm.shape import ForecastShape


@dataclass(frozen=True)
class PredRNNConfig(FrameRecurrentConfig):
    #: Side of the square patch folded into channels (authors: 4 for 64x64, 2 for 32x32 grids).
    patch: int = 2
    #: Stacked ST-LSTM layers (paper: 4).
    layers: int = 4
    #: Hidden channels of every layer (paper: 128 for 64x64 video; 64 fits small grids).
    hidden: int = 64
    #: Kernel of the cell convolutions (paper: 5 on 16x16 patched frames; 3 suits the 8x4..16x16
    #: patched grids of small cities and costs a third).
    kernel: int = 3

    positive = ("patch", "layers", "hidden", "kernel")
    #: PredRNN had scheduled sampling in iterations from its first records; the rest of the shared
    #: objective came later.
    ADDED_LATER = ("history_loss", "scheduled_sampling_epochs")


@register_model("predrnn", PredRNNConfig)
class PredRNN(FrameRecurrentForecaster):
    """PredRNN (NeurIPS 2017): stacked ST-LSTMs with a zigzag memory, forecasting frame by frame."""

    counts_iterations_always = True

    def __init__(self, shape: ForecastShape, config: PredRNNConfig):
        super().__init__(shape, config)
        patch_channels = shape.channels * config.patch**2
        self.cells = nn.ModuleList(
            SpatioTemporalLSTMCell(patch_channels if index == 0 else config.hidden, config.hidden, config.kernel, bias=False)
            for index in range(config.layers)
        )
        self.readout = nn.Conv2d(config.hidden, patch_channels, 1, bias=False)
        # 1 on the grid's cells, 0 on the padding: the padding's forecast is held at 0
        valid = fold_frames(torch.ones(1, 1, shape.channels, shape.height, shape.width), config.patch, 0.0)[0]
        self.register_buffer("valid_patches", valid, persistent=False)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        zeros = self.zero_state(batch, self.config.hidden, self.config.patch)
        hiddens = [zeros] * len(self.cells)
        cells = [zeros] * len(self.cells)
        memory = zeros

        def advance(frame: torch.Tensor, step: int) -> torch.Tensor:
            nonlocal memory
            layer_input = frame
            for index, cell in enumerate(self.cells):
                hiddens[index], cells[index], memory = cell(layer_input, hiddens[index], cells[index], memory)
                layer_input = hiddens[index]
            return self.readout(layer_input) * self.valid_patches

        return self.roll(batch, self.config.patch, advance)
