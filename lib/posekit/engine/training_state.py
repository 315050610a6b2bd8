"""Save and restore the full training state, so an interrupted run continues bitwise where it stopped.

``checkpoint.pth.tar`` keeps the official entries ('epoch', 'model', 'state_dict', 'best_state_dict',
'perf', 'optimizer') plus 'iteration', 'scheduler', 'scaler', 'rng' and 'loss_history'; every entry is a
tensor or a primitive, so it loads with ``torch.load(weights_only=True)``. 'state_dict' has no
``module.`` prefix. ``model_best.pth.tar`` and ``final_state.pth.tar`` are plain state dicts.
"""
import collections
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from ..utils.errors import CheckpointError
from ..utils.io import PathLike, atomic_write
from .checkpoint import load_weights
from .rng import capture_rng_state, restore_rng_state

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pth.tar"
BEST_FILE = "model_best.pth.tar"
FINAL_FILE = "final_state.pth.tar"


@dataclass
class Progress:
    """How far training got: the epoch in progress, batches of it done, and every step's losses."""

    epoch: int = 0
    iteration: int = 0
    # One (heatmap loss, offset loss) row per optimizer step since the start of training.
    loss_history: List[Sequence[float]] = field(default_factory=list)

    @property
    def global_step(self) -> int:
        """Optimizer steps taken since the start of training."""
        return len(self.loss_history)


def save_torch(path: PathLike, obj: object) -> None:
    """``torch.save(obj)`` to ``path`` atomically: an interruption leaves the previous file intact."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def read_checkpoint(path: Path) -> Dict[str, object]:
    """A training checkpoint read with ``weights_only=True``."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for unreadable files
        raise CheckpointError(f"{path}: cannot read the training checkpoint ({type(err).__name__}: "
                              f"{str(err).strip().splitlines()[0] if str(err).strip() else ''}); "
                              f"delete it or set AUTO_RESUME False to start afresh") from None


def training_checkpoint(model: nn.Module, model_name: str, optimizer: torch.optim.Optimizer,
                        scheduler: torch.optim.lr_scheduler.MultiStepLR, scaler: torch.amp.GradScaler,
                        progress: Progress) -> Dict[str, object]:
    """Everything needed to resume; ``model`` is the bare (unwrapped) model."""
    weights = model.state_dict()
    scheduler_state = dict(scheduler.state_dict())
    # MultiStepLR keeps its milestones in a Counter, which is not a primitive type.
    scheduler_state["milestones"] = dict(scheduler_state["milestones"])
    return {
        "epoch": progress.epoch,
        "iteration": progress.iteration,
        "model": model_name,
        "state_dict": weights,
        # Official: the "best" model is the latest one (its performance is the epoch number).
        "best_state_dict": weights,
        "perf": float(progress.epoch),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler_state,
        "scaler": scaler.state_dict(),
        "rng": capture_rng_state(),
        "loss_history": torch.tensor(progress.loss_history, dtype=torch.float64).reshape(-1, 2),
    }


def restore_training_state(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                           scheduler: torch.optim.lr_scheduler.MultiStepLR,
                           scaler: torch.amp.GradScaler) -> Progress:
    """Load a checkpoint written by ``training_checkpoint`` (or the official one) into the training objects.

    Entries the official checkpoint lacks fall back to what it implies: the schedule stands at the stored
    epoch, which starts at its first batch; the random generators keep their seeded state.
    """
    checkpoint = read_checkpoint(path)
    load_weights(model, str(path), strict=True)
    optimizer.load_state_dict(checkpoint["optimizer"])
    epoch = int(checkpoint["epoch"])
    if "scheduler" in checkpoint:
        scheduler_state = dict(checkpoint["scheduler"])
        scheduler_state["milestones"] = collections.Counter(scheduler_state["milestones"])
        scheduler.load_state_dict(scheduler_state)
    else:
        # The stored optimizer already carries that epoch's learning rate; only the count is missing.
        scheduler.last_epoch = epoch
    if checkpoint.get("scaler"):
        scaler.load_state_dict(checkpoint["scaler"])
    if "rng" in checkpoint:
        restore_rng_state(checkpoint["rng"])
    history: Optional[torch.Tensor] = checkpoint.get("loss_history")
    progress = Progress(epoch=epoch, iteration=int(checkpoint.get("iteration", 0)),
                        loss_history=history.tolist() if history is not None else [])
    logger.info("=> resumed from %s at epoch %d, iteration %d", path, progress.epoch, progress.iteration)
    return progress
