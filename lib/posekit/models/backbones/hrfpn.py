"""detectron2 DensePose's HRFPN neck on posekit's HRNet (densepose.md 1.1), as KTNv2 and AMANet use it.

Each HRNet branch i is brought to stride 4 by a transposed conv (kernel 4, stride 2**i, no padding) + BN +
ReLU, all are cropped to the smallest size and concatenated; output j (0-based) is a conv of kernel and
stride 2**j + BN + ReLU, cropped so that sizes halve exactly from level to level (counted from the coarsest),
then a 3x3 conv. Names as the official ``HRFPN``: ``bottom_up``, ``fpn_conv``, ``interp_conv``,
``reduction_pooling_conv``; outputs "p1".."p5" at strides 4..64. BatchNorm here is ordinary (trainable).
"""
from typing import Dict, List, Sequence

import torch
from torch import nn
from yacs.config import CfgNode

from ...utils.errors import ConfigError
from ..layers import ShapeSpec
from .build import Backbone, register_backbone
from .hrnet import BLOCKS, HRNet

HRNET_STAGES = (2, 3, 4)  # MODEL.HRNET.STAGE2..STAGE4 follow the stem and layer1
# The official HRNet crops upsampled branches before fusing them and so takes any input size; posekit's fuses
# them uncropped, so its inputs must divide by the coarsest branch's stride.
HRNET_SIZE_DIVISIBILITY = 32


def _upsampler(channels: int, stride: int) -> nn.Sequential:
    """Transposed conv (kernel 4, ``stride``, no padding, no bias) + BN + ReLU, keeping ``channels``."""
    return nn.Sequential(nn.ConvTranspose2d(channels, channels, 4, stride=stride, padding=0, bias=False),
                         nn.BatchNorm2d(channels, momentum=0.1), nn.ReLU(inplace=True))


def _reducer(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """Conv with kernel = stride = ``stride`` (pooling and channel reduction in one) + BN + ReLU."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, stride, stride=stride),
                         nn.BatchNorm2d(out_channels, momentum=0.1), nn.ReLU(inplace=True))


class HRFPN(Backbone):
    """``num_outputs`` pyramid levels "p1".. from the HRNet branches ``in_features`` (highest resolution first)."""

    size_divisibility = HRNET_SIZE_DIVISIBILITY

    def __init__(self, bottom_up: nn.Module, in_features: Sequence[str], in_channels: Sequence[int],
                 out_channels: int, num_outputs: int) -> None:
        super().__init__()
        if num_outputs < 1:
            raise ConfigError("MODEL.ROI_HEADS.IN_FEATURES: empty; HRFPN makes one level per entry "
                              "(expected e.g. [p1, p2, p3, p4, p5])")
        self.bottom_up = bottom_up
        self.in_features = list(in_features)
        # Created in the official order (3x3 outputs first) for its state-dict and random-number order.
        self.fpn_conv = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in range(num_outputs))
        self.interp_conv = nn.ModuleList(_upsampler(c, 2 ** i) for i, c in enumerate(in_channels))
        self.reduction_pooling_conv = nn.ModuleList(_reducer(sum(in_channels), out_channels, 2 ** i)
                                                    for i in range(num_outputs))
        self._shapes = {f"p{i + 1}": ShapeSpec(out_channels, 2 ** (i + 2)) for i in range(num_outputs)}

    def output_shape(self) -> Dict[str, ShapeSpec]:
        """"p{i}" -> (out channels, 2**(i+1)), highest resolution first."""
        return dict(self._shapes)

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The pyramid's levels by name, highest resolution first."""
        features = self.bottom_up(x)
        upsampled = [conv(features[name]) for conv, name in zip(self.interp_conv, self.in_features)]
        height = min(u.shape[2] for u in upsampled)
        width = min(u.shape[3] for u in upsampled)
        merged = torch.cat([u[:, :, :height, :width] for u in upsampled], dim=1)
        levels = [conv(merged) for conv in self.reduction_pooling_conv]
        levels = self._halving_sizes(levels)
        return dict(zip(self._shapes, (conv(level) for conv, level in zip(self.fpn_conv, levels))))

    @staticmethod
    def _halving_sizes(levels: List[torch.Tensor]) -> List[torch.Tensor]:
        """Each level cropped to 2**k times the coarsest level's size, k levels above it."""
        coarsest = levels[-1]
        last = len(levels) - 1
        return [level[:, :, :coarsest.shape[2] * 2 ** (last - i), :coarsest.shape[3] * 2 ** (last - i)]
                for i, level in enumerate(levels)]


def hrnet_stages(hrnet: CfgNode) -> CfgNode:
    """MODEL.HRNET.STAGE2..4 as the per-stage lists posekit's HRNet takes (MODEL.SPEC.STAGES layout)."""
    stages = []
    for index in HRNET_STAGES:
        key, stage = f"MODEL.HRNET.STAGE{index}", hrnet[f"STAGE{index}"]
        if not stage.NUM_BRANCHES == len(stage.NUM_BLOCKS) == len(stage.NUM_CHANNELS):
            raise ConfigError(f"{key}.NUM_BRANCHES: {stage.NUM_BRANCHES}; expected the length of NUM_BLOCKS "
                              f"{list(stage.NUM_BLOCKS)} and of NUM_CHANNELS {list(stage.NUM_CHANNELS)}")
        if stage.BLOCK not in BLOCKS:
            raise ConfigError(f"{key}.BLOCK: '{stage.BLOCK}'; expected one of {', '.join(sorted(BLOCKS))}")
        if stage.FUSE_METHOD != "SUM":
            raise ConfigError(f"{key}.FUSE_METHOD: '{stage.FUSE_METHOD}'; expected SUM")
        stages.append(stage)
    return CfgNode({"NUM_STAGES": len(stages),
                    "NUM_MODULES": [s.NUM_MODULES for s in stages],
                    "NUM_BRANCHES": [s.NUM_BRANCHES for s in stages],
                    "BLOCK": [s.BLOCK for s in stages],
                    "NUM_BLOCKS": [list(s.NUM_BLOCKS) for s in stages],
                    "NUM_CHANNELS": [list(s.NUM_CHANNELS) for s in stages]})


def build_hrfpn_backbone(cfg: CfgNode) -> HRFPN:
    """HRNet (``MODEL.HRNET``) + HRFPN with OUT_CHANNELS and one level per ``MODEL.ROI_HEADS.IN_FEATURES``
    entry, as detectron2 DensePose's builder."""
    hrnet_cfg = cfg.MODEL.HRNET
    # The official stem is 64 wide and STEM_INPLANES must equal it; here it sets the stem width.
    hrnet = HRNet(hrnet_stages(hrnet_cfg), stem_channels=hrnet_cfg.STEM_INPLANES)
    shapes = hrnet.output_shape()
    return HRFPN(hrnet, list(shapes), [channels for channels, _ in shapes.values()],
                 hrnet_cfg.HRFPN.OUT_CHANNELS, len(cfg.MODEL.ROI_HEADS.IN_FEATURES))


register_backbone("build_hrfpn_backbone", build_hrfpn_backbone)
