"""A family-neutral training set: per-image records turned into training items by the family's mapper.

Each item's random draws come from a seed sequence of (seed, epoch, index), handed to the mapper: worker
count, worker seeding and resume points then never change an item. Call ``set_epoch`` before each epoch.
"""
from typing import Any, Callable, List

import numpy as np
from torch.utils.data import Dataset

# mapper(record, seed_sequence) -> training item.
Mapper = Callable[[dict, np.random.SeedSequence], Any]


class MappedDataset(Dataset):
    """``records[index]`` mapped by ``mapper`` with the item's own seed sequence."""

    def __init__(self, records: List[dict], mapper: Mapper, seed: int) -> None:
        self.records = records
        self.mapper = mapper
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random draws the next items use."""
        self.epoch = epoch

    def __getitem__(self, index: int) -> Any:
        return self.mapper(self.records[index], np.random.SeedSequence([self.seed, self.epoch, index]))
