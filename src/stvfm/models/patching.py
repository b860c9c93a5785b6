"""Spatial patching shared by every patch-based model (ST-VFM, UniST, ...).

Grids that the patch does not divide are padded at the bottom/right with the scaled value of
0 counts (``ForecastShape.scaled_zero``: -1 for counts whose minimum is 0 under the [-1, 1]
min-max, not 0, which is the middle of the data) and the forecast is cropped back; data is
never cropped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def padded_size(height: int, width: int, patch: int) -> tuple[int, int]:
    return -(-height // patch) * patch, -(-width // patch) * patch


def pad_grid(frames: torch.Tensor, patch: int, value: float) -> torch.Tensor:
    """Pad (..., H, W) on the bottom/right to multiples of ``patch`` with ``value`` (for data frames the
    shape's ``scaled_zero``: the cells beyond the city hold nothing)."""
    height, width = frames.shape[-2:]
    target_h, target_w = padded_size(height, width, patch)
    if (target_h, target_w) == (height, width):
        return frames
    return F.pad(frames, (0, target_w - width, 0, target_h - height), value=value)


def patchify(frames: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, T, C, H, W) -> (B, T, N, C*patch*patch) with N = (H/patch)*(W/patch), row-major."""
    batch, steps, channels, height, width = frames.shape
    grid_h, grid_w = height // patch, width // patch
    tokens = frames.reshape(batch, steps, channels, grid_h, patch, grid_w, patch)
    tokens = tokens.permute(0, 1, 3, 5, 2, 4, 6)
    return tokens.reshape(batch, steps, grid_h * grid_w, channels * patch * patch)


def unpatchify(tokens: torch.Tensor, patch: int, channels: int, height: int, width: int) -> torch.Tensor:
    """Inverse of ``patchify`` for a padded (height, width) grid."""
    batch, steps = tokens.shape[:2]
    grid_h, grid_w = height // patch, width // patch
    frames = tokens.reshape(batch, steps, grid_h, grid_w, channels, patch, patch)
    frames = frames.permute(0, 1, 4, 2, 5, 3, 6)
    return frames.reshape(batch, steps, channels, height, width)
