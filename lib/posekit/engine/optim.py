"""The optimizer and the learning-rate schedule of the TRAIN section (dekr.md 6.7)."""
import warnings

import torch
from torch import nn
from yacs.config import CfgNode

from ..utils.errors import ConfigError

OPTIMIZERS = ("adam", "sgd")


def build_optimizer(cfg: CfgNode, model: nn.Module) -> torch.optim.Optimizer:
    """Adam with lr TRAIN.LR (no weight decay, as official) or SGD with TRAIN.MOMENTUM / WD / NESTEROV."""
    name = cfg.TRAIN.OPTIMIZER
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.TRAIN.LR)
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.TRAIN.LR, momentum=cfg.TRAIN.MOMENTUM,
                               weight_decay=cfg.TRAIN.WD, nesterov=cfg.TRAIN.NESTEROV)
    raise ConfigError(f"TRAIN.OPTIMIZER: unknown optimizer '{name}'; expected one of {', '.join(OPTIMIZERS)}")


def build_lr_scheduler(cfg: CfgNode, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.MultiStepLR:
    """MultiStepLR(TRAIN.LR_STEP, TRAIN.LR_FACTOR), stepped once after each epoch, positioned at TRAIN.BEGIN_EPOCH."""
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(cfg.TRAIN.LR_STEP), cfg.TRAIN.LR_FACTOR)
    with warnings.catch_warnings():
        # Fast-forwarding before any optimizer.step() is intended here, not the misuse torch warns about.
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(cfg.TRAIN.BEGIN_EPOCH):
            scheduler.step()
    return scheduler
