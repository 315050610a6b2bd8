"""Normalisation layers of the two-stage detectors' backbones, by the names their configs use.

``FrozenBatchNorm2d`` is detectron2's (DensePose R-CNN, densepose.md 1.1): a batch norm whose statistics and
affine parameters are fixed buffers. ``AffineChannel2d`` is Detectron v1's (LCR-Net, lcrnet.md 3.2): the
per-channel scale and shift that Caffe2 ResNets store instead of a batch norm, with no statistics and no eps.
Neither is ever trained, and both are per-channel affine maps, so ``norm_as_affine`` lets inference code fold
them (and eval-mode BatchNorm2d) into the convolution before them.
"""
from typing import Dict, Optional, Tuple

import torch
from torch import nn

from ...utils.errors import ConfigError

GROUP_NORM_GROUPS = 32  # detectron2's "GN"


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d with fixed buffers weight, bias, running_mean, running_var (detectron2's semantics)."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        # 1 - eps makes a fresh layer the identity once eps is added back.
        self.register_buffer("running_var", torch.ones(num_features) - eps)

    def scale_and_shift(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """Per-channel (scale, shift) with y = x * scale + shift, in the buffers' dtype."""
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        return scale, self.bias - self.running_mean * scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, shift = self.scale_and_shift()
        return x * scale.to(x.dtype).view(1, -1, 1, 1) + shift.to(x.dtype).view(1, -1, 1, 1)

    def _load_from_state_dict(self, state_dict: Dict[str, torch.Tensor], prefix: str, *args, **kwargs) -> None:
        # A trainable BatchNorm2d's state carries a step counter that means nothing here.
        state_dict.pop(prefix + "num_batches_tracked", None)
        # Caffe2-converted weights hold only weight and bias (statistics already folded in); detectron2 then
        # uses mean 0 and variance 1 (not 1 - eps), and so do we, to give its numbers.
        if prefix + "weight" in state_dict:
            state_dict.setdefault(prefix + "running_mean", torch.zeros_like(self.running_mean))
            state_dict.setdefault(prefix + "running_var", torch.ones_like(self.running_var))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"

    @classmethod
    def convert_frozen_batchnorm(cls, module: nn.Module) -> nn.Module:
        """``module`` with every BatchNorm2d / SyncBatchNorm in it replaced by a frozen copy (in place for
        containers; a norm itself is returned converted)."""
        if isinstance(module, (nn.BatchNorm2d, nn.SyncBatchNorm)):
            return cls.from_batch_norm(module)
        for name, child in module.named_children():
            converted = cls.convert_frozen_batchnorm(child)
            if converted is not child:
                module.add_module(name, converted)
        return module

    @classmethod
    def from_batch_norm(cls, norm: nn.modules.batchnorm._BatchNorm) -> "FrozenBatchNorm2d":
        """A frozen layer computing what ``norm`` computes in eval mode."""
        frozen = cls(norm.num_features, norm.eps).to(norm.running_mean)
        with torch.no_grad():
            if norm.affine:
                frozen.weight.copy_(norm.weight)
                frozen.bias.copy_(norm.bias)
            frozen.running_mean.copy_(norm.running_mean)
            frozen.running_var.copy_(norm.running_var)
        return frozen


class AffineChannel2d(nn.Module):
    """Detectron v1's fixed per-channel affine map y = x * weight + bias (buffers; no statistics, no eps)."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features
        # Identity until weights are loaded (Detectron v1 draws a random scale, which no checkpoint keeps).
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.to(x.dtype).view(1, -1, 1, 1) + self.bias.to(x.dtype).view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return str(self.num_features)


def get_norm(name: str, channels: int, key: str = "MODEL.RESNETS.NORM") -> Optional[nn.Module]:
    """The norm layer a config names ("FrozenBN", "AffineChannel", "BN", "GN" or "" for none)."""
    if name == "":
        return None
    if name == "FrozenBN":
        return FrozenBatchNorm2d(channels)
    if name == "AffineChannel":
        return AffineChannel2d(channels)
    if name == "BN":
        return nn.BatchNorm2d(channels)
    if name == "GN":
        return nn.GroupNorm(GROUP_NORM_GROUPS, channels)
    raise ConfigError(f"{key}: unknown norm '{name}'; expected one of FrozenBN, AffineChannel, BN, GN or '' (none)")


def norm_as_affine(norm: nn.Module) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
    """Float64 per-channel (scale, shift) with norm(x) = x * scale + shift in eval mode; None if not such a map."""
    if isinstance(norm, FrozenBatchNorm2d):
        weight, bias, mean, var, eps = norm.weight, norm.bias, norm.running_mean, norm.running_var, norm.eps
    elif isinstance(norm, AffineChannel2d):
        return norm.weight.double(), norm.bias.double()
    elif isinstance(norm, nn.BatchNorm2d) and norm.running_var is not None:
        ones = torch.ones_like(norm.running_var)
        weight = norm.weight if norm.affine else ones
        bias = norm.bias if norm.affine else ones - 1
        mean, var, eps = norm.running_mean, norm.running_var, norm.eps
    else:
        return None
    scale = weight.double() * torch.rsqrt(var.double() + eps)
    return scale, bias.double() - mean.double() * scale
