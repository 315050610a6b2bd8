"""The DEKR network (Geng et al., CVPR 2021): HRNet features -> (heatmaps with centre, per-keypoint offsets)."""
from typing import Tuple

import torch
from torch import nn
from yacs.config import CfgNode

from ...utils.errors import ConfigError
from ..backbones.hrnet import HRNet, conv_bn
from .adaptive_conv import AdaptBlock
from .heads import make_heatmap_head, make_offset_heads

REQUIRED_SPEC_KEYS = {
    "STAGES": ("NUM_STAGES", "NUM_MODULES", "NUM_BRANCHES", "BLOCK", "NUM_BLOCKS", "NUM_CHANNELS"),
    "HEAD_HEATMAP": ("BLOCK", "NUM_BLOCKS", "NUM_CHANNELS", "DILATION_RATE"),
    "HEAD_OFFSET": ("BLOCK", "NUM_BLOCKS", "NUM_CHANNELS_PERKPT", "DILATION_RATE"),
}


def check_spec(spec: CfgNode) -> None:
    """Raise ConfigError naming the first MODEL.SPEC key the architecture needs but the config lacks."""
    if "FINAL_CONV_KERNEL" not in spec:
        raise ConfigError("MODEL.SPEC.FINAL_CONV_KERNEL is missing (1 in the official configs)")
    for section, keys in REQUIRED_SPEC_KEYS.items():
        for key in keys:
            if section not in spec or key not in spec[section]:
                raise ConfigError(f"MODEL.SPEC.{section}.{key} is missing; see experiments/coco/w32/*.yaml")
    stages = spec.STAGES
    for s in range(stages.NUM_STAGES):
        if len(stages.NUM_CHANNELS[s]) != stages.NUM_BRANCHES[s]:
            raise ConfigError(f"MODEL.SPEC.STAGES: stage {s + 2} has NUM_BRANCHES {stages.NUM_BRANCHES[s]} "
                              f"but {len(stages.NUM_CHANNELS[s])} NUM_CHANNELS entries")


class DEKR(HRNet):
    """HRNet with DEKR's heads; module names and order equal the official ``PoseHigherResolutionNet``."""

    def __init__(self, spec: CfgNode, num_joints: int) -> None:
        check_spec(spec)
        super().__init__(spec.STAGES, **HRNet.stem_args(spec))
        self.num_joints = num_joints
        self.channels_per_joint = spec.HEAD_OFFSET.NUM_CHANNELS_PERKPT
        self.transition_heatmap = conv_bn(self.out_channels, spec.HEAD_HEATMAP.NUM_CHANNELS, 1, 1, relu=True)
        self.transition_offset = conv_bn(self.out_channels, num_joints * self.channels_per_joint, 1, 1, relu=True)
        self.head_heatmap = make_heatmap_head(spec.HEAD_HEATMAP, num_joints + 1, spec.FINAL_CONV_KERNEL)
        self.offset_feature_layers, self.offset_final_layer = make_offset_heads(
            spec.HEAD_OFFSET, num_joints, spec.FINAL_CONV_KERNEL)

    @classmethod
    def from_config(cls, cfg: CfgNode) -> "DEKR":
        """The network of ``cfg.MODEL.SPEC`` with ``cfg.DATASET.NUM_JOINTS`` keypoints."""
        return cls(cfg.MODEL.SPEC, cfg.DATASET.NUM_JOINTS)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Return raw ``(heatmap (N, K+1, H/4, W/4), offset (N, 2K, H/4, W/4))``; centre is channel K."""
        features = super().forward(x)
        heatmap = self.head_heatmap[1](self.head_heatmap[0](self.transition_heatmap(features)))
        joint_features = self.transition_offset(features).split(self.channels_per_joint, dim=1)
        offsets = [final(layers(f)) for f, layers, final
                   in zip(joint_features, self.offset_feature_layers, self.offset_final_layer)]
        return heatmap, torch.cat(offsets, dim=1)

    def init_weights(self) -> None:
        """The official training-time initialisation (dekr.md 3.4), quirks included.

        The quirks are kept because the published training recipe starts from them: the deformable
        convs are not ``nn.Conv2d`` and keep their default kaiming-uniform weights, and the transform
        and translation convs start at zero, so A = 0 (not the identity) and all nine taps of every
        adaptive conv sample the centre pixel until training moves them.
        """
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=0.001)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for module in self.modules():
            if isinstance(module, AdaptBlock):
                nn.init.zeros_(module.transform_matrix_conv.weight)
                nn.init.zeros_(module.translation_conv.weight)
