"""DEKR heads: a heatmap head (K keypoints + centre) and one adaptive-conv regression branch per keypoint."""
from typing import Dict, Tuple, Type

from torch import nn
from yacs.config import CfgNode

from ..backbones.hrnet import BLOCKS, block_class, make_layer
from .adaptive_conv import AdaptBlock

HEAD_BLOCKS: Dict[str, Type[nn.Module]] = {**BLOCKS, "ADAPTIVE": AdaptBlock}


def _final_conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size, 1, kernel_size // 2, bias=True)


def make_heatmap_head(spec: CfgNode, num_outputs: int, final_kernel: int) -> nn.ModuleList:
    """``[blocks, final conv]`` mapping HEAD_HEATMAP.NUM_CHANNELS features to ``num_outputs`` maps."""
    block = block_class(spec.BLOCK, "MODEL.SPEC.HEAD_HEATMAP.BLOCK", HEAD_BLOCKS)
    channels = spec.NUM_CHANNELS
    features = make_layer(block, channels, channels, spec.NUM_BLOCKS, dilation=spec.DILATION_RATE)
    return nn.ModuleList([features, _final_conv(channels * block.expansion, num_outputs, final_kernel)])


def make_offset_heads(spec: CfgNode, num_joints: int, final_kernel: int) -> Tuple[nn.ModuleList, nn.ModuleList]:
    """Per keypoint: blocks on its NUM_CHANNELS_PERKPT channels, then a conv to its (dx, dy)."""
    block = block_class(spec.BLOCK, "MODEL.SPEC.HEAD_OFFSET.BLOCK", HEAD_BLOCKS)
    channels = spec.NUM_CHANNELS_PERKPT
    features, finals = [], []
    # Built interleaved as the official code does, so a seeded build draws the same initial weights.
    for _ in range(num_joints):
        features.append(make_layer(block, channels, channels, spec.NUM_BLOCKS, dilation=spec.DILATION_RATE))
        finals.append(_final_conv(channels * block.expansion, 2, final_kernel))
    return nn.ModuleList(features), nn.ModuleList(finals)
