"""Lightning DataModule over a PreparedData, with UniST's batch sizes by grid size."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler

from stvfm.data.prepared import PreparedData
from stvfm.errors import ConfigError


def default_batch_size(height: int, width: int) -> int:
    """UniST's rule: smaller grids get larger batches (H+W < 32 -> 64, < 48 -> 32, else 16)."""
    if height + width < 32:
        return 64
    if height + width < 48:
        return 32
    return 16


def derived_seed(seed: int, *counters: int) -> int:
    """A seed that depends on (seed, *counters) only, well mixed so nearby seeds give unrelated streams."""
    return int(np.random.SeedSequence([seed % 2**63, *counters]).generate_state(1, np.uint64)[0] >> 1)


class EpochShuffleSampler(RandomSampler):
    """A random order derived from (seed, epoch) alone.

    Lightning calls ``set_epoch`` at every epoch start, also after resuming from a checkpoint, so
    a resumed run sees the same batches as an uninterrupted one (a single seeded generator would
    restart at the first epoch's order). Being a ``RandomSampler``, Lightning swaps it under DDP
    for its ``DistributedSampler``, which is also a function of (seed, epoch).
    """

    def __init__(self, data_source, seed: int = 0):
        super().__init__(data_source)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        generator = torch.Generator().manual_seed(derived_seed(self.seed, self.epoch))
        yield from torch.randperm(len(self.data_source), generator=generator).tolist()


class GridDataModule(L.LightningDataModule):
    """Loaders for train (shuffled by (seed, epoch), see ``EpochShuffleSampler``), val, test and predict (= test windows)."""

    def __init__(
        self,
        data: PreparedData,
        batch_size: int | None = None,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
        pin_memory: bool = False,
    ):
        super().__init__()
        shape = data.forecast_shape
        self.data = data
        self.batch_size = default_batch_size(shape.height, shape.width) if batch_size is None else batch_size
        self.eval_batch_size = 4 * self.batch_size if eval_batch_size is None else eval_batch_size
        if self.batch_size < 1 or self.eval_batch_size < 1 or num_workers < 0:
            raise ConfigError(f"batch sizes must be positive and num_workers >= 0, got {self.batch_size}, {self.eval_batch_size}, {num_workers}")
        self.num_workers = num_workers
        self.seed = seed
        self.pin_memory = pin_memory  # page-locked batches copy to a CUDA GPU asynchronously

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        dataset = self.data.dataset(split)
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=EpochShuffleSampler(dataset, self.seed) if shuffle else None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False)
