"""detectron2's feature pyramid network on the ResNet (densepose.md 1.1): P2..P5 from res2..res5 and P6.

Names as detectron2's: ``bottom_up.*``, ``fpn_lateral{s}`` and ``fpn_output{s}`` where 2**s is the level's
stride, outputs "p{s}".
"""
import math
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from yacs.config import CfgNode

from ...utils.errors import ConfigError
from ..layers import Conv2d, ShapeSpec, c2_xavier_fill, get_norm
from .build import Backbone, register_backbone
from .resnet import build_resnet_backbone

FUSE_TYPES = ("sum", "avg")


class LastLevelMaxPool(nn.Module):
    """P6 = P5 sub-sampled by a kernel-1, stride-2 max-pool (used by the RPN only)."""

    num_levels = 1
    in_feature = "p5"

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        return [F.max_pool2d(x, kernel_size=1, stride=2, padding=0)]


def _level(stride: int) -> int:
    """s with stride == 2**s."""
    return int(math.log2(stride))


class FPN(Backbone):
    """Lateral 1x1 convs, nearest x2 top-down path, fusion (sum or average) and 3x3 output convs."""

    def __init__(self, bottom_up: nn.Module, in_features: Sequence[str], out_channels: int, norm: str = "",
                 top_block: Optional[nn.Module] = None, fuse_type: str = "sum") -> None:
        super().__init__()
        shapes = bottom_up.output_shape()
        missing = [name for name in in_features if name not in shapes]
        if missing or not in_features:
            raise ConfigError(f"MODEL.FPN.IN_FEATURES: {list(in_features)}; expected a non-empty list from the "
                              f"bottom-up outputs {', '.join(shapes)} (MODEL.RESNETS.OUT_FEATURES)")
        strides = [shapes[name].stride for name in in_features]
        if any(deeper != 2 * shallower for shallower, deeper in zip(strides, strides[1:])):
            raise ConfigError(f"MODEL.FPN.IN_FEATURES: {list(in_features)} have strides {strides}; expected each "
                              "twice the one before (from high to low resolution)")
        if fuse_type not in FUSE_TYPES:
            raise ConfigError(f"MODEL.FPN.FUSE_TYPE: '{fuse_type}'; expected one of {', '.join(FUSE_TYPES)}")
        use_bias = norm == ""  # a norm's shift makes a bias redundant
        for name, stride in zip(in_features, strides):
            lateral = Conv2d(shapes[name].channels, out_channels, 1, bias=use_bias,
                             norm=get_norm(norm, out_channels, "MODEL.FPN.NORM"))
            output = Conv2d(out_channels, out_channels, 3, padding=1, bias=use_bias,
                            norm=get_norm(norm, out_channels, "MODEL.FPN.NORM"))
            c2_xavier_fill(lateral)
            c2_xavier_fill(output)
            self.add_module(f"fpn_lateral{_level(stride)}", lateral)
            self.add_module(f"fpn_output{_level(stride)}", output)
        self.top_block = top_block
        self.in_features = list(in_features)
        # Registered after the FPN convs, as in detectron2 (state-dict order).
        self.bottom_up = bottom_up
        self.fuse_type = fuse_type
        self.levels = [_level(stride) for stride in strides]
        self._shapes = {f"p{level}": ShapeSpec(out_channels, 2 ** level) for level in self.levels}
        if top_block is not None:
            for level in range(self.levels[-1] + 1, self.levels[-1] + 1 + top_block.num_levels):
                self._shapes[f"p{level}"] = ShapeSpec(out_channels, 2 ** level)
        self.size_divisibility = strides[-1]

    def output_shape(self) -> Dict[str, ShapeSpec]:
        """"p{s}" -> (out channels, 2**s), high resolution first."""
        return dict(self._shapes)

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The pyramid's maps by name, high resolution first."""
        features = self.bottom_up(x)
        results = []
        previous = None
        for name, level in zip(reversed(self.in_features), reversed(self.levels)):
            lateral = getattr(self, f"fpn_lateral{level}")(features[name])
            if previous is not None:
                lateral = lateral + F.interpolate(previous, scale_factor=2.0, mode="nearest")
                if self.fuse_type == "avg":
                    lateral = lateral / 2
            previous = lateral
            results.insert(0, getattr(self, f"fpn_output{level}")(previous))
        names = list(self._shapes)
        if self.top_block is not None:
            source = self.top_block.in_feature
            top_input = features[source] if source in features else results[names.index(source)]
            results.extend(self.top_block(top_input))
        return dict(zip(names, results))


def build_resnet_fpn_backbone(cfg: CfgNode) -> FPN:
    """ResNet (``MODEL.RESNETS``) + FPN (``MODEL.FPN``) with P6 by max-pooling, as detectron2's builder."""
    fpn = cfg.MODEL.FPN
    return FPN(build_resnet_backbone(cfg), fpn.IN_FEATURES, fpn.OUT_CHANNELS, norm=fpn.NORM,
               top_block=LastLevelMaxPool(), fuse_type=fpn.FUSE_TYPE)


register_backbone("build_resnet_fpn_backbone", build_resnet_fpn_backbone)
