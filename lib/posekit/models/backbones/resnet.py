"""detectron2's ResNet / ResNeXt body (densepose.md 1.1; LCR-Net's ResNet-50-C4 as config values, lcrnet.md 3.2).

Module names are detectron2's (``stem.conv1``, ``res2.0.conv1.norm``, ``res3.0.shortcut``), and so are module
creation and initialisation order, so that its checkpoints load by name and a seeded build draws the same
numbers. Detectron v1 (LCR-Net) differs only in values: NORM "AffineChannel", its stem pools like
detectron2's (3x3, stride 2, padding 1 in Detectron.pytorch), and a converter renames its keys.
"""
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from yacs.config import CfgNode

from ...utils.errors import ConfigError
from ..layers import Conv2d, FrozenBatchNorm2d, ShapeSpec, c2_msra_fill, get_norm
from .build import Backbone, register_backbone

BLOCKS_PER_STAGE = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
STAGE_NAMES = ("res2", "res3", "res4", "res5")


def freeze_module(module: nn.Module) -> nn.Module:
    """``module`` with no parameter requiring grad and its batch norms frozen (detectron2's block freeze)."""
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return FrozenBatchNorm2d.convert_frozen_batchnorm(module)


class BasicStem(nn.Module):
    """7x7/2 conv + norm + ReLU, then 3x3/2 max-pool with padding 1: stride 4."""

    stride = 4

    def __init__(self, in_channels: int = 3, out_channels: int = 64, norm: str = "BN") -> None:
        super().__init__()
        self.out_channels = out_channels
        self.conv1 = Conv2d(in_channels, out_channels, 7, stride=2, padding=3, bias=False,
                            norm=get_norm(norm, out_channels))
        c2_msra_fill(self.conv1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu_(self.conv1(x))
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


class BottleneckBlock(nn.Module):
    """1x1 -> grouped, dilated 3x3 -> 1x1 with a projection shortcut when the channels change.

    ``stride_in_1x1``: the stride sits on the first 1x1 conv (MSRA / Caffe2 ResNets) instead of the 3x3.
    """

    def __init__(self, in_channels: int, out_channels: int, *, bottleneck_channels: int, stride: int = 1,
                 num_groups: int = 1, norm: str = "BN", stride_in_1x1: bool = False, dilation: int = 1) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        # Created first, as in detectron2: it fixes the state-dict order and the random-number order.
        self.shortcut = None
        if in_channels != out_channels:
            self.shortcut = Conv2d(in_channels, out_channels, 1, stride=stride, bias=False,
                                   norm=get_norm(norm, out_channels))
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = Conv2d(in_channels, bottleneck_channels, 1, stride=stride_1x1, bias=False,
                            norm=get_norm(norm, bottleneck_channels))
        self.conv2 = Conv2d(bottleneck_channels, bottleneck_channels, 3, stride=stride_3x3, padding=dilation,
                            bias=False, groups=num_groups, dilation=dilation, norm=get_norm(norm, bottleneck_channels))
        self.conv3 = Conv2d(bottleneck_channels, out_channels, 1, bias=False, norm=get_norm(norm, out_channels))
        for conv in (self.conv1, self.conv2, self.conv3, self.shortcut):
            if conv is not None:
                c2_msra_fill(conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu_(self.conv1(x))
        out = F.relu_(self.conv2(out))
        out = self.conv3(out)
        out += x if self.shortcut is None else self.shortcut(x)
        return F.relu_(out)


def make_stage(num_blocks: int, in_channels: int, out_channels: int, *, bottleneck_channels: int,
               first_stride: int = 1, num_groups: int = 1, norm: str = "BN", stride_in_1x1: bool = False,
               dilation: int = 1) -> nn.Sequential:
    """``num_blocks`` bottleneck blocks of ``out_channels``; only the first strides (and changes channels)."""
    blocks = [BottleneckBlock(in_channels if i == 0 else out_channels, out_channels,
                              bottleneck_channels=bottleneck_channels, stride=first_stride if i == 0 else 1,
                              num_groups=num_groups, norm=norm, stride_in_1x1=stride_in_1x1, dilation=dilation)
              for i in range(num_blocks)]
    return nn.Sequential(*blocks)


def blocks_per_stage(depth: int) -> Sequence[int]:
    """Blocks in res2..res5 for a ResNet ``depth``."""
    if depth not in BLOCKS_PER_STAGE:
        raise ConfigError(f"MODEL.RESNETS.DEPTH: {depth} is not supported; expected one of "
                          f"{', '.join(map(str, BLOCKS_PER_STAGE))}")
    return BLOCKS_PER_STAGE[depth]


def build_stage(cfg: CfgNode, index: int, dilation: int = 1) -> nn.Sequential:
    """Stage ``res{index}`` (2..5) as ``cfg.MODEL.RESNETS`` describes it; ``build_stage(cfg, 5)`` is the C4
    box head's res5 (stride 2, no dilation), as detectron2's Res5ROIHeads builds it."""
    resnets = cfg.MODEL.RESNETS
    factor = 2 ** (index - 2)  # widths double from one stage to the next
    out_channels = resnets.RES2_OUT_CHANNELS * factor
    return make_stage(
        blocks_per_stage(resnets.DEPTH)[index - 2],
        resnets.STEM_OUT_CHANNELS if index == 2 else out_channels // 2,
        out_channels,
        bottleneck_channels=resnets.NUM_GROUPS * resnets.WIDTH_PER_GROUP * factor,
        # A dilated res5 keeps res4's resolution instead of striding.
        first_stride=1 if index == 2 or dilation > 1 else 2,
        num_groups=resnets.NUM_GROUPS, norm=resnets.NORM, stride_in_1x1=resnets.STRIDE_IN_1X1, dilation=dilation)


def _check_resnet_cfg(resnets: CfgNode) -> None:
    """Fail on values detectron2 asserts on or that posekit does not implement."""
    if resnets.RES5_DILATION not in (1, 2):
        raise ConfigError(f"MODEL.RESNETS.RES5_DILATION: {resnets.RES5_DILATION}; expected 1 or 2")
    if any(resnets.get("DEFORM_ON_PER_STAGE", ())):
        raise ConfigError("MODEL.RESNETS.DEFORM_ON_PER_STAGE: deformable ResNet stages are not supported; "
                          "expected all False")


def make_res5_stage(cfg: CfgNode) -> Tuple[nn.Sequential, int]:
    """The C4 box head's res5 (``build_stage(cfg, 5)``) and its output channels."""
    _check_resnet_cfg(cfg.MODEL.RESNETS)
    return build_stage(cfg, 5), cfg.MODEL.RESNETS.RES2_OUT_CHANNELS * 8


class ResNet(Backbone):
    """The stem and stages ``res2``.. of a ResNet; returns the maps named in ``out_features``."""

    def __init__(self, stem: BasicStem, stages: Sequence[nn.Sequential], out_features: Sequence[str]) -> None:
        super().__init__()
        self.stem = stem
        shapes = {"stem": ShapeSpec(stem.out_channels, stem.stride)}
        self.stage_names: List[str] = []
        stride = stem.stride
        for name, stage in zip(STAGE_NAMES, stages):
            self.add_module(name, stage)
            self.stage_names.append(name)
            for block in stage:
                stride *= block.stride
            shapes[name] = ShapeSpec(stage[-1].out_channels, stride)
        unknown = [name for name in out_features if name not in shapes]
        if unknown or not out_features:
            raise ConfigError(f"MODEL.RESNETS.OUT_FEATURES: {list(out_features)}; expected a non-empty list from "
                              f"{', '.join(shapes)}")
        self.out_features = list(out_features)
        self._shapes = {name: shapes[name] for name in self.out_features}

    def output_shape(self) -> Dict[str, ShapeSpec]:
        """Channels and stride of each returned map, in OUT_FEATURES order."""
        return dict(self._shapes)

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The maps named in ``out_features``, from shallow to deep."""
        outputs = {}
        x = self.stem(x)
        if "stem" in self.out_features:
            outputs["stem"] = x
        for name in self.stage_names:
            x = getattr(self, name)(x)
            if name in self.out_features:
                outputs[name] = x
        return outputs

    def freeze(self, freeze_at: int = 0) -> "ResNet":
        """Freeze the stem (``freeze_at`` >= 1) and res2..res{freeze_at}: no gradients, norms frozen."""
        if freeze_at >= 1:
            freeze_module(self.stem)
        for index, name in enumerate(self.stage_names, start=2):
            if freeze_at >= index:
                freeze_module(getattr(self, name))
        return self


def build_resnet_backbone(cfg: CfgNode) -> ResNet:
    """ResNet of ``MODEL.RESNETS``, built only up to the deepest of OUT_FEATURES, frozen to
    ``MODEL.BACKBONE.FREEZE_AT``; C4 detectors use OUT_FEATURES ["res4"]."""
    resnets = cfg.MODEL.RESNETS
    _check_resnet_cfg(resnets)
    stem = BasicStem(3, resnets.STEM_OUT_CHANNELS, resnets.NORM)
    # Stages deeper than the last returned map would hold parameters without gradients.
    deepest = max((STAGE_NAMES.index(name) + 2 for name in resnets.OUT_FEATURES if name in STAGE_NAMES), default=1)
    stages = [build_stage(cfg, index, resnets.RES5_DILATION if index == 5 else 1) for index in range(2, deepest + 1)]
    return ResNet(stem, stages, resnets.OUT_FEATURES).freeze(cfg.MODEL.BACKBONE.FREEZE_AT)


register_backbone("build_resnet_backbone", build_resnet_backbone)
