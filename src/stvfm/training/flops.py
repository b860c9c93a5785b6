"""FLOPs a run does per window and per epoch, counted from its settings: a measure of work that does
not depend on the host, so runs on different CPUs (or a GPU) can be placed on one axis.

Counted by torch's ``FlopCounterMode`` on the meta device (no compute; on the CPU at a batch of one
for a model that reads a value in its forward pass): matrix products, attention and
convolutions, forward and backward, which is where these models spend their time; element-wise
work is not counted. Windows never interact, so a window's FLOPs are a batch of one's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

from stvfm.data.batch import random_batch
from stvfm.data.datamodule import default_batch_size
from stvfm.data.prepared import prepare_data
from stvfm.models import create_model
from stvfm.models.registry import build_config
from stvfm.shape import ForecastShape
from stvfm.training.config import RunConfig, protocol_for


def _conv_backward_flops(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                         _output_padding, _groups, output_mask, out_shape=None, **_) -> int:
    """Each gradient a convolution's backward computes (input, weight) costs its forward's FLOPs. Torch's
    own formula counts a grouped convolution's weight gradient as if ungrouped: up to ``groups`` times
    too many, which made TAU's and SimVP's depthwise convolutions look 10-20x their cost."""
    forward = conv_flop_count(x_shape, w_shape, grad_out_shape, transposed)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def count_flops(step: Callable[[], None]) -> int:
    """FLOPs of one call of ``step`` (forward and backward alike), as torch's counter sees them, with
    the convolution backward counted per group."""
    with FlopCounterMode(display=False, custom_mapping={torch.ops.aten.convolution_backward: _conv_backward_flops}) as counter:
        step()
    return counter.get_total_flops()


@dataclass(frozen=True)
class WindowFlops:
    train: int  # forward, loss and backward of one training window
    val: int  # forward and loss of one validation window


def window_flops(model: str, shape: ForecastShape, options: dict[str, Any]) -> WindowFlops:
    """FLOPs of one window of ``model`` built with ``options``. Pretrained weights are never loaded:
    the count depends on the architecture alone."""
    if "weights" in vars(build_config(model, {})):
        options = {**options, "weights": "random"}
    try:
        return _counted_on(torch.device("meta"), model, shape, options)
    except (RuntimeError, NotImplementedError):  # a value read in the forward pass (a schedule's step): compute it
        return _counted_on(torch.device("cpu"), model, shape, options)


def _counted_on(device: torch.device, model: str, shape: ForecastShape, options: dict[str, Any]) -> WindowFlops:
    with device:
        network = create_model(model, shape, **options)
    batch = {key: value.to(device) for key, value in random_batch(shape, 1).items()}
    train = count_flops(lambda: network.loss(batch, network(batch))["loss"].backward())
    network.eval()
    with torch.no_grad():
        val = count_flops(lambda: network.loss(batch, network(batch)))
    return WindowFlops(train, val)


@dataclass(frozen=True)
class EpochFlops:
    """One epoch of a run as its settings make it: training windows (after ``limit_train_batches``)
    and validation windows, each times its FLOPs per window."""

    window: WindowFlops
    train_windows: int
    val_windows: int

    @property
    def total(self) -> int:
        return self.window.train * self.train_windows + self.window.val * self.val_windows


def epoch_flops(settings: dict[str, Any]) -> EpochFlops:
    """FLOPs of one epoch of the run whose resolved settings (``config.yaml``, a ledger record's
    ``settings``) are given; reads the dataset to count its windows."""
    config = RunConfig.from_dict(settings)
    data = prepare_data(config.dataset, protocol_for(config), root=config.data_root)
    train, val = len(data.dataset("train")), len(data.dataset("val"))
    limit = config.limit_train_batches
    if limit != 1.0:  # as Lightning reads it: an int counts batches, a float is a fraction of them
        shape = data.forecast_shape
        batch_size = config.batch_size or default_batch_size(shape.height, shape.width)
        batches = limit if isinstance(limit, int) else int(-(-train // batch_size) * limit)
        train = min(train, batches * batch_size)
    return EpochFlops(window_flops(config.model, data.forecast_shape, config.model_options), train, val)
