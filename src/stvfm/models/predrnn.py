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
  back). ``scheduled_sampling_iterations`` > 0 turns the authors' schedule on.
- The loss is the MSE of the Q forecast frames only; the authors also score the
  next-frame predictions made while reading the history.
- No layer normalisation inside the cells (the authors' default for their benchmarks).
- Grids the patch does not divide are padded with zeros and cropped back; predictions fed
  back are zeroed on the padding so that it looks like the padded history.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from stvfm.models.base import Forecaster, ModelConfig
from stvfm.models.recurrent import SpatioTemporalLSTMCell, fold_frames, roll_out, unfold_frames
from stvfm.models.registry import register_model
from stvfm.shape import ForecastShape


@dataclass(frozen=True)
class PredRNNConfig(ModelConfig):
    #: Side of the square patch folded into channels (authors: 4 for 64x64, 2 for 32x32 grids).
    patch: int = 2
    #: Stacked ST-LSTM layers (paper: 4).
    layers: int = 4
    #: Hidden channels of every layer (paper: 128 for 64x64 video; 64 fits small grids).
    hidden: int = 64
    #: Kernel of the cell convolutions (paper: 5 on 16x16 patched frames; 3 suits the 8x4..16x16
    #: patched grids of small cities and costs a third).
    kernel: int = 3
    #: Training iterations over which the probability of feeding the true future frame
    #: decays from 1 to 0 (authors: 50000); 0 = always feed own predictions.
    scheduled_sampling_iterations: int = 0

    positive = ("patch", "layers", "hidden", "kernel")
    non_negative = ("scheduled_sampling_iterations",)


@register_model("predrnn", PredRNNConfig)
class PredRNN(Forecaster):
    """PredRNN (NeurIPS 2017): stacked ST-LSTMs with a zigzag memory, forecasting frame by frame."""

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
        self.register_buffer("training_iterations", torch.zeros((), dtype=torch.long))

    def _true_frame_probability(self) -> float:
        """Probability of feeding the true future frame now (scheduled sampling; 0 when off or at eval)."""
        total = self.config.scheduled_sampling_iterations
        if not self.training or total == 0:
            return 0.0
        return max(0.0, 1.0 - float(self.training_iterations) / total)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        patch, fill = self.config.patch, self.shape.scaled_zero
        history = fold_frames(batch["x"], patch, fill)
        batch_size, steps, _, grid_h, grid_w = history.shape
        true_probability = self._true_frame_probability() if "y" in batch else 0.0
        future = fold_frames(batch["y"], patch, fill) if true_probability > 0 else None
        if self.training and "y" in batch:
            self.training_iterations += 1

        zeros = history.new_zeros(batch_size, self.config.hidden, grid_h, grid_w)
        hiddens = [zeros] * len(self.cells)
        cells = [zeros] * len(self.cells)
        memory = zeros

        def advance(frame: torch.Tensor, step: int) -> torch.Tensor:
            nonlocal memory
            if step >= steps and future is not None:
                use_true = (torch.rand(batch_size, 1, 1, 1, device=frame.device) < true_probability).to(frame.dtype)
                frame = use_true * future[:, step - steps] + (1 - use_true) * frame
            layer_input = frame
            for index, cell in enumerate(self.cells):
                hiddens[index], cells[index], memory = cell(layer_input, hiddens[index], cells[index], memory)
                layer_input = hiddens[index]
            return self.readout(layer_input) * self.valid_patches

        forecast = roll_out(history, self.shape.horizon, advance)
        return {"forecast": unfold_frames(forecast, patch, self.shape.height, self.shape.width)}