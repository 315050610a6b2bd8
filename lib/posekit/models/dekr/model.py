"""The DEKR network (Geng et al., CVPR 2021): HRNet features -> (heatmaps with centre, per-keypoint offsets).

The network composes posekit's HRNet backbone with DEKR's heads. Official checkpoints name the backbone's
modules at the top level (``conv1``, ``stage4``, ...); ``convert_official_state_dict`` moves them under
``backbone.`` when weights are loaded (``posekit.models.checkpoint.load_weights``).
"""
from typing import Dict, Mapping, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from yacs.config import CfgNode

from ...utils.errors import ConfigError
from ..backbones.hrnet import HRNet, conv_bn
from ..preprocess import PixelNormalizer
from .adaptive_conv import AdaptBlock
from .heads import make_heatmap_head, make_offset_heads
from .loss import DekrLoss

# The official data pipeline: RGB, ToTensor (/255) and ImageNet Normalize.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PIXEL_SCALE = 255.0
BACKBONE_PREFIX = "backbone."

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


def concat_branches(branches: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """HRNet's branches, lower resolutions bilinearly upsampled to the first, concatenated (dekr.md 2.5)."""
    maps = list(branches.values())
    size = maps[0].shape[-2:]
    upsampled = [F.interpolate(x, size=size, mode="bilinear", align_corners=False) for x in maps[1:]]
    return torch.cat([maps[0]] + upsampled, dim=1)


class DEKR(nn.Module):
    """HRNet backbone + DEKR's heads; below ``backbone`` the module names and order are the official ones.

    ``forward(image)`` maps raw RGB pixels (N, 3, H, W), 0..255 in any dtype, to the raw outputs;
    ``forward(batch)`` with a training batch (a mapping with "image" and the targets) returns the losses.
    """

    def __init__(self, spec: CfgNode, num_joints: int, loss: DekrLoss) -> None:
        super().__init__()
        check_spec(spec)
        self.normalizer = PixelNormalizer(IMAGENET_MEAN, IMAGENET_STD, PIXEL_SCALE, "RGB")
        self.backbone = HRNet(spec.STAGES, **HRNet.stem_args(spec))
        self.num_joints = num_joints
        self.channels_per_joint = spec.HEAD_OFFSET.NUM_CHANNELS_PERKPT
        features = self.backbone.out_channels
        self.transition_heatmap = conv_bn(features, spec.HEAD_HEATMAP.NUM_CHANNELS, 1, 1, relu=True)
        self.transition_offset = conv_bn(features, num_joints * self.channels_per_joint, 1, 1, relu=True)
        self.head_heatmap = make_heatmap_head(spec.HEAD_HEATMAP, num_joints + 1, spec.FINAL_CONV_KERNEL)
        self.offset_feature_layers, self.offset_final_layer = make_offset_heads(
            spec.HEAD_OFFSET, num_joints, spec.FINAL_CONV_KERNEL)
        self.criterion = loss

    @classmethod
    def from_config(cls, cfg: CfgNode) -> "DEKR":
        """The network of ``cfg.MODEL.SPEC`` with ``cfg.DATASET.NUM_JOINTS`` keypoints and the LOSS section."""
        return cls(cfg.MODEL.SPEC, cfg.DATASET.NUM_JOINTS, DekrLoss(cfg))

    @property
    def has_unused_parameters(self) -> bool:
        """Whether a switched-off loss leaves a head without gradients (DDP must then look for them)."""
        return not self.criterion.all_losses_on

    def forward(self, inputs: Union[torch.Tensor, Mapping[str, torch.Tensor]]
                ) -> Union[Tuple[torch.Tensor, torch.Tensor], Dict[str, torch.Tensor]]:
        """Raw ``(heatmap (N, K+1, H/4, W/4), offset (N, 2K, H/4, W/4))`` for an image; losses for a batch."""
        if isinstance(inputs, torch.Tensor):
            return self.predict(inputs)
        heatmap, offset = self.predict(inputs["image"])
        return self.criterion(heatmap, offset, inputs["heatmap"], inputs["mask"], inputs["offset"],
                              inputs["offset_weight"])

    def predict(self, image: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The network's raw outputs; centre heatmap is channel K."""
        features = concat_branches(self.backbone(self.normalizer(image)))
        heatmap = self.head_heatmap[1](self.head_heatmap[0](self.transition_heatmap(features)))
        joint_features = self.transition_offset(features).split(self.channels_per_joint, dim=1)
        offsets = [final(layers(f)) for f, layers, final
                   in zip(joint_features, self.offset_feature_layers, self.offset_final_layer)]
        return heatmap, torch.cat(offsets, dim=1)

    def convert_official_state_dict(self, state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Official key names (backbone modules at the top level) -> this module's; posekit's own pass unchanged."""
        backbone_modules = {name for name, _ in self.backbone.named_children()}
        return {(BACKBONE_PREFIX + key if key.split(".")[0] in backbone_modules else key): value
                for key, value in state_dict.items()}

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
