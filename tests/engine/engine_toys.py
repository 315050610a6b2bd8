"""A toy two-loss model and data set, fast stand-ins for training tests (8x8 images, 4x4 targets)."""
from pathlib import Path
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from posekit.engine import (Checkpointer, Hook, LearningRateSchedule, MetricsLogger, Schedule, SolverSettings,
                            Trainer)
from posekit.engine.distributed import DistContext
from posekit.engine.rng import seed_everything

INPUT_SIZE, OUTPUT_SIZE = 8, 4
CPU = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


class ToyModel(nn.Module):
    """``forward(batch) -> {"loss_map", "loss_vector", "map_mean"}``: two losses and a logged-only scalar.

    A BatchNorm makes its buffers part of what training changes.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.map_head = nn.Conv2d(8, 3, 1)
        self.vector_head = nn.Linear(8, 4)

    def forward(self, batch: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        features = self.stem(batch["image"])
        predicted_map = self.map_head(features)
        vector = self.vector_head(features.mean(dim=(2, 3)))
        return {"loss_map": F.mse_loss(predicted_map, batch["map"]),
                "loss_vector": F.smooth_l1_loss(vector, batch["vector"]),
                "map_mean": predicted_map.detach().mean()}


class ToyDataset(Dataset):
    """Items that depend only on the index."""

    def __init__(self, size: int = 10) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(1000 + index)
        return {"image": torch.randn(3, INPUT_SIZE, INPUT_SIZE, generator=generator),
                "map": torch.rand(3, OUTPUT_SIZE, OUTPUT_SIZE, generator=generator),
                "vector": torch.randn(4, generator=generator)}


def epoch_solver(**overrides) -> SolverSettings:
    """Adam at 0.01, batch 2, 3 epochs with the rate x0.1 after epoch 1 (DEKR's kind of schedule)."""
    settings = dict(optimizer="adam", base_lr=0.01, images_per_batch=2,
                    schedule=Schedule(unit="epoch", length=3, steps=(1,), gamma=0.1))
    settings.update(overrides)
    return SolverSettings(**settings)


def iteration_solver(**overrides) -> SolverSettings:
    """SGD at 0.02 for 12 iterations, linear warm-up over 4, x0.1 at 6 and 9 (detectron2's kind of schedule)."""
    settings = dict(optimizer="sgd", base_lr=0.02, images_per_batch=2, momentum=0.9, weight_decay=1e-4,
                    weight_decay_norm=0.0, schedule=Schedule(unit="iteration", length=12, steps=(6, 9), gamma=0.1,
                                                             warmup_iters=4, warmup_factor=0.001))
    settings.update(overrides)
    return SolverSettings(**settings)


def make_trainer(output_dir: Path, solver: Optional[SolverSettings] = None, dataset: Optional[Dataset] = None,
                 checkpoint_period: int = 0, workers: int = 0, hooks: Sequence[Hook] = (),
                 model: Optional[nn.Module] = None) -> Trainer:
    """A fresh process's trainer: everything seeded and built anew, as tools/train.py does."""
    seed_everything(0)
    model = model or ToyModel()
    standard = [LearningRateSchedule(), MetricsLogger(1, str(output_dir / "tb")), Checkpointer(checkpoint_period)]
    return Trainer(model, ToyDataset() if dataset is None else dataset, solver or epoch_solver(), CPU, output_dir,
                   standard + list(hooks), seed=0, workers=workers, auto_resume=True, model_name="toy")


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
    """ToyDataset whose map targets are NaN from epoch ``poisoned_epoch`` on."""

    def __init__(self, poisoned_epoch: int) -> None:
        super().__init__()
        self.poisoned_epoch = poisoned_epoch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int):
        item = super().__getitem__(index)
        if self.epoch >= self.poisoned_epoch:
            item["map"] = torch.full_like(item["map"], float("nan"))
        return item
