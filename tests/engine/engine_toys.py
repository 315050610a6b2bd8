"""A toy DEKR-shaped model and data set, fast stand-ins for training tests (K = 2 joints, 8x8 images)."""
import torch
from torch import nn
from torch.utils.data import Dataset

from posekit.config import get_cfg

NUM_JOINTS = 2
INPUT_SIZE, OUTPUT_SIZE = 8, 4


class ToyDekr(nn.Module):
    """``forward(x) -> (heatmap (K+1)xRxR, offset 2KxRxR)`` with a BatchNorm, so buffers are trained too."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.heatmap = nn.Conv2d(8, NUM_JOINTS + 1, 1)
        self.offset = nn.Conv2d(8, 2 * NUM_JOINTS, 1)

    def forward(self, x: torch.Tensor):
        features = self.stem(x)
        return self.heatmap(features), self.offset(features)


class ToyDataset(Dataset):
    """Items ``(image, heatmap, mask, offset, offset_weight)`` that depend only on the index."""

    def __init__(self, size: int = 10) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int):
        generator = torch.Generator().manual_seed(1000 + index)
        image = torch.randn(3, INPUT_SIZE, INPUT_SIZE, generator=generator)
        heatmap = torch.rand(NUM_JOINTS + 1, OUTPUT_SIZE, OUTPUT_SIZE, generator=generator)
        mask = torch.ones(NUM_JOINTS + 1, OUTPUT_SIZE, OUTPUT_SIZE)
        offset = torch.randn(2 * NUM_JOINTS, OUTPUT_SIZE, OUTPUT_SIZE, generator=generator)
        offset_weight = (torch.rand(2 * NUM_JOINTS, OUTPUT_SIZE, OUTPUT_SIZE, generator=generator) > 0.5).float()
        return image, heatmap, mask, offset, offset_weight


def toy_cfg(**overrides):
    """A training config for the toys: CPU, batch 2, Adam, 3 epochs with a learning-rate step after epoch 1."""
    cfg = get_cfg()
    cfg.DEVICE = "cpu"
    cfg.WORKERS = 0
    cfg.PRINT_FREQ = 1
    cfg.AUTO_RESUME = True
    cfg.MODEL.NUM_JOINTS = cfg.DATASET.NUM_JOINTS = NUM_JOINTS
    cfg.TRAIN.IMAGES_PER_GPU = 2
    cfg.TRAIN.END_EPOCH = 3
    cfg.TRAIN.LR = 0.01
    cfg.TRAIN.LR_STEP = [1]
    for key, value in overrides.items():
        node = cfg
        *parents, leaf = key.split("__")
        for parent in parents:
            node = node[parent]
        node[leaf] = value
    return cfg


class SimulatedKill(Exception):
    """Stands for the process being killed between two checkpoints."""


class KilledDataset(ToyDataset):
    """ToyDataset that 'kills the process' when asked for its ``fetch_budget + 1``-th item."""

    def __init__(self, fetch_budget: int) -> None:
        super().__init__()
        self.fetch_budget = fetch_budget

    def __getitem__(self, index: int):
        if self.fetch_budget == 0:
            raise SimulatedKill()
        self.fetch_budget -= 1
        return super().__getitem__(index)


class PoisonedDataset(ToyDataset):
    """ToyDataset whose heatmap targets are NaN from epoch ``poisoned_epoch`` on."""

    def __init__(self, poisoned_epoch: int) -> None:
        super().__init__()
        self.poisoned_epoch = poisoned_epoch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int):
        image, heatmap, *rest = super().__getitem__(index)
        if self.epoch >= self.poisoned_epoch:
            heatmap = torch.full_like(heatmap, float("nan"))
        return (image, heatmap, *rest)
