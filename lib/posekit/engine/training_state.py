"""Save and restore the full training state, so an interrupted run continues bitwise where it stopped.

``checkpoint.pth.tar`` keeps the official DEKR entries ('epoch', 'model', 'state_dict', 'best_state_dict',
'perf', 'optimizer') plus 'iteration' (steps done in the current epoch), 'scaler', 'rng' and
'loss_history' (loss name -> one value per step); every entry is a tensor or a primitive, so it loads with
``torch.load(weights_only=True)``. 'state_dict' has no ``module.`` prefix. ``model_best.pth.tar`` and
``final_state.pth.tar`` are plain state dicts. The learning rate is a function of the iteration, so no
scheduler state is stored.
"""
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

import torch
from torch import nn

from ..models.checkpoint import load_weights
from ..utils.errors import CheckpointError
from ..utils.io import PathLike, atomic_write
from .rng import capture_rng_state, restore_rng_state

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pth.tar"
BEST_FILE = "model_best.pth.tar"
FINAL_FILE = "final_state.pth.tar"
# Checkpoints written before the shared trainer came from DEKR only and stored its two losses as columns.
LEGACY_LOSS_NAMES = ("loss_heatmap", "loss_offset")

LossHistory = Dict[str, List[float]]


@dataclass
class Progress:
    """How far training got: optimizer steps since iteration 0 and every step's named losses."""

    iteration: int = 0
    loss_history: LossHistory = field(default_factory=dict)

    def record(self, losses: Dict[str, float]) -> None:
        """Append one step's losses (a name first seen now gets NaN for the earlier steps)."""
        steps = max((len(values) for values in self.loss_history.values()), default=0)
        for name, value in losses.items():
            self.loss_history.setdefault(name, [float("nan")] * steps).append(value)


def save_torch(path: PathLike, obj: object) -> None:
    """``torch.save(obj)`` to ``path`` atomically: an interruption leaves the previous file intact."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def read_checkpoint(path: Path) -> Dict[str, object]:
    """A training checkpoint read with ``weights_only=True``."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for unreadable files
        reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise CheckpointError(f"{path}: cannot read the training checkpoint ({type(err).__name__}: {reason}); "
                              f"delete it or set AUTO_RESUME False to start afresh") from None


def training_checkpoint(model: nn.Module, model_name: str, optimizer: torch.optim.Optimizer,
                        scaler: torch.amp.GradScaler, progress: Progress, iterations_per_epoch: int) -> Dict[str, object]:
    """Everything needed to resume; ``model`` is the bare (unwrapped) model."""
    weights = model.state_dict()
    epoch, iteration = divmod(progress.iteration, iterations_per_epoch)
    return {
        "epoch": epoch,
        "iteration": iteration,
        "model": model_name,
        "state_dict": weights,
        # Official: the "best" model is the latest one (its performance is the epoch number).
        "best_state_dict": weights,
        "perf": float(epoch),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": capture_rng_state(),
        "loss_history": {name: torch.tensor(values, dtype=torch.float64)
                         for name, values in progress.loss_history.items()},
    }


def checkpoint_loss_history(checkpoint: Dict[str, object]) -> LossHistory:
    """The per-step named losses a training checkpoint stores (empty for the official DEKR ones, which have none)."""
    return _loss_history(checkpoint.get("loss_history"))


def _loss_history(stored: object) -> LossHistory:
    if isinstance(stored, torch.Tensor):
        return {name: stored[:, column].tolist() for column, name in enumerate(LEGACY_LOSS_NAMES)}
    return {name: values.tolist() for name, values in (stored or {}).items()}


def restore_training_state(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                           scaler: torch.amp.GradScaler, iterations_per_epoch: int) -> Progress:
    """Load a checkpoint written by ``training_checkpoint`` (or the official one) into the training objects.

    The official checkpoint lacks 'iteration', 'scaler', 'rng' and 'loss_history': it resumes at the start
    of its stored epoch with the generators in their seeded state.
    """
    checkpoint = read_checkpoint(path)
    load_weights(model, str(path), strict=True)
    optimizer.load_state_dict(checkpoint["optimizer"])
    if checkpoint.get("scaler"):
        scaler.load_state_dict(checkpoint["scaler"])
    if "rng" in checkpoint:
        restore_rng_state(checkpoint["rng"])
    iteration = int(checkpoint["epoch"]) * iterations_per_epoch + int(checkpoint.get("iteration", 0))
    progress = Progress(iteration, _loss_history(checkpoint.get("loss_history")))
    logger.info("=> resumed from %s at epoch %d, iteration %d", path, *divmod(iteration, iterations_per_epoch))
    return progress
