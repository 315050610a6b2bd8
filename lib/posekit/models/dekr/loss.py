"""DEKR training losses (dekr.md 6.6): masked heatmap MSE and weighted smooth-L1 on offsets.

Both are computed in float32 whatever the autocast dtype of the predictions, so fp16/bf16 training does
not overflow the squared errors or lose the small offset weights. A loss switched off by its
LOSS.WITH_* key is left out of the returned dict (officially it was None and not added).
"""
from typing import Dict

import torch
from torch import nn

from ...utils.errors import ConfigError

# Official smooth-L1 transition point.
OFFSET_BETA = 1.0 / 9


def _check_same_shape(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, what: str) -> None:
    if not pred.shape == target.shape == weight.shape:
        raise ValueError(f"{what}: prediction {tuple(pred.shape)}, target {tuple(target.shape)} and weight "
                         f"{tuple(weight.shape)} must have the same shape")


def heatmap_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Plain mean over every element of mask * (pred - target)^2 (the mask does not renormalise)."""
    _check_same_shape(pred, target, mask, "heatmap loss")
    return ((pred.float() - target.float()) ** 2 * mask.float()).mean()


def offset_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted smooth-L1 (beta 1/9) summed and divided by the number of positive weights (at least 1)."""
    _check_same_shape(pred, target, weight, "offset loss")
    error = (pred.float() - target.float()).abs()
    smooth = torch.where(error < OFFSET_BETA, 0.5 * error ** 2 / OFFSET_BETA, error - 0.5 * OFFSET_BETA)
    weight = weight.float()
    positives = (weight > 0).sum().clamp(min=1)
    return (smooth * weight).sum() / positives


class DekrLoss(nn.Module):
    """``forward(pred_heatmap, pred_offset, heatmap, mask, offset, offset_weight) -> {"loss_heatmap", "loss_offset"}``."""

    def __init__(self, cfg) -> None:
        super().__init__()
        self.with_heatmap = cfg.LOSS.WITH_HEATMAPS_LOSS
        self.heatmap_factor = cfg.LOSS.HEATMAPS_LOSS_FACTOR
        self.with_offset = cfg.LOSS.WITH_OFFSETS_LOSS
        self.offset_factor = cfg.LOSS.OFFSETS_LOSS_FACTOR
        if not (self.with_heatmap or self.with_offset):
            raise ConfigError("LOSS.WITH_HEATMAPS_LOSS and LOSS.WITH_OFFSETS_LOSS are both False: nothing to train")

    @property
    def all_losses_on(self) -> bool:
        """Whether both heads receive a loss."""
        return self.with_heatmap and self.with_offset

    def forward(self, pred_heatmap: torch.Tensor, pred_offset: torch.Tensor, heatmap: torch.Tensor,
                mask: torch.Tensor, offset: torch.Tensor, offset_weight: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Scaled float32 scalar losses of the terms switched on in the config."""
        losses = {}
        with torch.autocast(device_type=pred_heatmap.device.type, enabled=False):
            if self.with_heatmap:
                losses["loss_heatmap"] = heatmap_loss(pred_heatmap, heatmap, mask) * self.heatmap_factor
            if self.with_offset:
                losses["loss_offset"] = offset_loss(pred_offset, offset, offset_weight) * self.offset_factor
        return losses
