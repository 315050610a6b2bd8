"""What the shared trainer needs to know of a family's recipe: optimizer, parameter groups, schedule, clipping.

A family turns its own config keys into ``SolverSettings`` (DEKR from TRAIN.*, detectron2-style families
from SOLVER.*), so the loop never reads a family's keys. Epoch-based schedules (DEKR) and iteration-based
ones with warm-up (detectron2's WarmupMultiStepLR) are one ``Schedule`` counted in iterations.
"""
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from ..utils.errors import ConfigError

OPTIMIZERS = ("adam", "sgd")
WARMUP_METHODS = ("linear", "constant")
CLIP_TYPES = ("value", "norm", "full_model")
# Parameters of these module types get SolverSettings.weight_decay_norm (detectron2's rule).
NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.GroupNorm, nn.InstanceNorm2d,
              nn.LayerNorm, nn.LocalResponseNorm)


@dataclass(frozen=True)
class Schedule:
    """Learning-rate multiplier by iteration: warm-up, then ``gamma`` at each step.

    ``unit`` 'epoch' counts ``length``, ``steps`` and ``start`` in epochs (converted with the epoch's
    iteration count), 'iteration' in iterations. Warm-up is always in iterations.
    """

    unit: str
    length: int
    steps: Sequence[int]
    gamma: float
    start: int = 0
    warmup_iters: int = 0
    warmup_factor: float = 1.0
    warmup_method: str = "linear"

    def __post_init__(self) -> None:
        if self.unit not in ("epoch", "iteration"):
            raise ValueError(f"schedule unit must be 'epoch' or 'iteration', got {self.unit!r}")
        if self.warmup_method not in WARMUP_METHODS:
            raise ConfigError(f"warm-up method '{self.warmup_method}' unknown; expected one of {WARMUP_METHODS}")
        if list(self.steps) != sorted(self.steps):
            raise ConfigError(f"learning-rate steps must increase, got {list(self.steps)}")

    def _in_iterations(self, value: int, iterations_per_epoch: int) -> int:
        return value * iterations_per_epoch if self.unit == "epoch" else value

    def first_iteration(self, iterations_per_epoch: int) -> int:
        """Where a fresh run starts (TRAIN.BEGIN_EPOCH fast-forwards an epoch schedule)."""
        return self._in_iterations(self.start, iterations_per_epoch)

    def total_iterations(self, iterations_per_epoch: int) -> int:
        """The iteration count at which training ends."""
        return self._in_iterations(self.length, iterations_per_epoch)

    def learning_rate(self, base_lr: float, iteration: int, iterations_per_epoch: int) -> float:
        """The rate of the step taken at ``iteration`` (0-based) for a parameter group starting at ``base_lr``."""
        lr = base_lr * self._warmup(iteration)
        for step in self.steps:
            # Multiplied once per step passed, as torch's MultiStepLR does, so DEKR's rates are bit-identical.
            if iteration >= self._in_iterations(step, iterations_per_epoch):
                lr *= self.gamma
        return lr

    def _warmup(self, iteration: int) -> float:
        if iteration >= self.warmup_iters:
            return 1.0
        if self.warmup_method == "constant":
            return self.warmup_factor
        alpha = iteration / self.warmup_iters
        return self.warmup_factor * (1 - alpha) + alpha


@dataclass(frozen=True)
class GradientClipping:
    """detectron2's SOLVER.CLIP_GRADIENTS: 'value' (elementwise), 'norm' (per parameter), 'full_model'."""

    clip_type: str
    clip_value: float
    norm_type: float = 2.0

    def __post_init__(self) -> None:
        if self.clip_type not in CLIP_TYPES:
            raise ConfigError(f"SOLVER.CLIP_GRADIENTS.CLIP_TYPE: unknown type '{self.clip_type}'; "
                              f"expected one of {', '.join(CLIP_TYPES)}")

    def __call__(self, parameters: List[nn.Parameter]) -> None:
        """Clip the gradients of ``parameters`` in place."""
        with_grad = [p for p in parameters if p.grad is not None]
        if self.clip_type == "value":
            torch.nn.utils.clip_grad_value_(with_grad, self.clip_value)
        elif self.clip_type == "norm":
            for parameter in with_grad:
                torch.nn.utils.clip_grad_norm_([parameter], self.clip_value, self.norm_type)
        else:
            torch.nn.utils.clip_grad_norm_(with_grad, self.clip_value, self.norm_type)


def clipping_from_cfg(cfg) -> Optional[GradientClipping]:
    """The base tree's SOLVER.CLIP_GRADIENTS section as a GradientClipping, or None when disabled."""
    clip = cfg.SOLVER.CLIP_GRADIENTS
    if not clip.ENABLED:
        return None
    return GradientClipping(clip.CLIP_TYPE, clip.CLIP_VALUE, clip.NORM_TYPE)


@dataclass(frozen=True)
class SolverSettings:
    """A family's training recipe in the trainer's terms (batch size is per process).

    ``weight_decay_norm`` / ``weight_decay_bias`` None mean: as every other parameter. With both None and
    ``bias_lr_factor`` 1 all parameters form one group, in ``model.parameters()`` order.
    """

    optimizer: str
    base_lr: float
    schedule: Schedule
    images_per_batch: int
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    weight_decay_norm: Optional[float] = None
    weight_decay_bias: Optional[float] = None
    bias_lr_factor: float = 1.0
    clip_gradients: Optional[GradientClipping] = None
    amp: str = ""
    # Stop (checkpointing first) after this many seconds; 0 = no limit.
    max_time: float = 0.0
    # Cap on iterations per epoch (0 = the whole data set); for short runs.
    max_iters_per_epoch: int = 0
    # Name of the config key holding the optimizer, for error messages.
    optimizer_key: str = "optimizer"


def parameter_groups(model: nn.Module, settings: SolverSettings) -> List[Dict[str, object]]:
    """Optimizer parameter groups: one per distinct (lr, weight decay), norm and bias rules applied."""
    uniform = (settings.weight_decay_norm is None and settings.weight_decay_bias is None
               and settings.bias_lr_factor == 1.0)
    if uniform:
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]
    groups: Dict[tuple, List[nn.Parameter]] = {}
    seen = set()
    for module in model.modules():
        for name, parameter in module.named_parameters(recurse=False):
            if not parameter.requires_grad or id(parameter) in seen:
                continue
            seen.add(id(parameter))
            lr, decay = settings.base_lr, settings.weight_decay
            if isinstance(module, NORM_TYPES) and settings.weight_decay_norm is not None:
                decay = settings.weight_decay_norm
            elif name == "bias":
                lr *= settings.bias_lr_factor
                if settings.weight_decay_bias is not None:
                    decay = settings.weight_decay_bias
            groups.setdefault((lr, decay), []).append(parameter)
    return [{"params": params, "lr": lr, "weight_decay": decay} for (lr, decay), params in groups.items()]


def build_optimizer(model: nn.Module, settings: SolverSettings) -> torch.optim.Optimizer:
    """Adam (no weight decay unless groups set one, as DEKR officially) or SGD with momentum / decay / Nesterov."""
    groups = parameter_groups(model, settings)
    if settings.optimizer == "adam":
        return torch.optim.Adam(groups, lr=settings.base_lr)
    if settings.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=settings.base_lr, momentum=settings.momentum,
                               weight_decay=settings.weight_decay, nesterov=settings.nesterov)
    raise ConfigError(f"{settings.optimizer_key}: unknown optimizer '{settings.optimizer}'; "
                      f"expected one of {', '.join(OPTIMIZERS)}")


def iterations_per_epoch(num_samples: int, settings: SolverSettings) -> int:
    """Steps per epoch and process: the whole shard, or max_iters_per_epoch when smaller."""
    full = math.ceil(num_samples / settings.images_per_batch)
    limit = settings.max_iters_per_epoch
    return min(full, limit) if limit > 0 else full
