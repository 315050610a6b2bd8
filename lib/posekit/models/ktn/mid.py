"""KTN's multi-instance decoders (MID): the FPN levels merged into one stride-4 map the DensePose ROIAlign reads.

* MID v1 (densepose.md 3.1) is detectron2's Panoptic-FPN decoder, layer for layer: ``mid_v1`` builds
  ``models.densepose.Decoder`` with KTN v1's output width (DECODER_OUT_DIMS).
* MID v2 (densepose.md 3.2, 12): bottom-up feature adaptation A_0 = F_0, A_l = F_l + FA(A_{l-1}) with
  FA = space-to-depth by 2 (phase-major channel order) + 3x3 conv 4C -> C + ReLU (``bottom_up_<level>.adt_conv``);
  top-down per level max(1, log2(stride / 4)) x [3x3 conv + ReLU, then, above stride 4, 1x1 conv C -> 4C + ReLU
  and pixel shuffle x2]; the levels summed; the optional trident block (1x1 and dilation 1, 2, 3 branches with
  GroupNorm, ``trident_convs.*``); a final 1x1 conv (``predictor``). Space-to-depth needs even sizes up to the
  second coarsest level: ``size_divisibility`` is the coarsest stride, which the detector pads images to.
"""
import math
from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from yacs.config import CfgNode

from ...utils.errors import ConfigError, DataError
from ..densepose import Decoder
from ..layers import Conv2d, ShapeSpec, c2_msra_fill, get_norm
from ..layers.norm import GROUP_NORM_GROUPS

NORM_KEY = "MODEL.ROI_DENSEPOSE_HEAD.DECODER_NORM"
TRIDENT_DILATIONS = (1, 2, 3)


def mid_v1(cfg: CfgNode, input_shape: Dict[str, ShapeSpec], in_features: List[str]) -> Decoder:
    """KTN v1's MID: the Panoptic-FPN decoder with DECODER_OUT_DIMS output channels."""
    head = cfg.MODEL.ROI_DENSEPOSE_HEAD
    return Decoder(input_shape, in_features, head.DECODER_CONV_DIMS, head.DECODER_OUT_DIMS,
                   head.DECODER_COMMON_STRIDE, head.DECODER_NORM)


def space_to_depth(x: Tensor) -> Tensor:
    """(N, C, H, W) -> (N, 4C, H/2, W/2): channel p*C + c holds phase p of [(even row, even col), (even, odd),
    (odd, even), (odd, odd)] of channel c (KTNv2's order, not F.pixel_unshuffle's c*4 + p)."""
    if x.shape[-2] % 2 or x.shape[-1] % 2:
        raise DataError(f"MID v2 space-to-depth needs even feature sizes, got {tuple(x.shape[-2:])}: pad images to "
                        f"a multiple of the coarsest MID input stride")
    return torch.cat([x[..., 0::2, 0::2], x[..., 0::2, 1::2], x[..., 1::2, 0::2], x[..., 1::2, 1::2]], dim=1)


def _conv(in_channels: int, out_channels: int, kernel_size: int, norm: str) -> Conv2d:
    """Conv + optional norm of its own output width + ReLU, c2 MSRA init (KTNv2's decoder convs)."""
    conv = Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=not norm,
                  norm=get_norm(norm, out_channels, NORM_KEY), activation=F.relu)
    c2_msra_fill(conv)
    return conv


class FeatureAdaptation(nn.Module):
    """Space-to-depth by 2, then 3x3 conv 4C -> C (+ norm) + ReLU: a level brought to the next stride."""

    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        self.adt_conv = _conv(4 * channels, channels, 3, norm)

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, H, W), H and W even -> (N, C, H/2, W/2)."""
        return self.adt_conv(space_to_depth(x))


def _trident_branch(channels: int, dilation: int = 0) -> nn.Sequential:
    """1x1 (dilation 0) or dilated 3x3 conv without bias, GroupNorm, ReLU (PyTorch's default conv init)."""
    if dilation:
        conv = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False)
    else:
        conv = nn.Conv2d(channels, channels, 1, bias=False)
    return nn.Sequential(conv, nn.GroupNorm(GROUP_NORM_GROUPS, channels), nn.ReLU())


class MultiInstanceDecoderV2(nn.Module):
    """KTNv2's MID (module docstring); children named as KTNv2's (``bottom_up_<level>``, ``<level>``,
    ``trident_convs``, ``predictor``)."""

    def __init__(self, input_shape: Dict[str, ShapeSpec], in_features: List[str], conv_dims: int, out_dims: int,
                 common_stride: int, norm: str, multi_scale: bool) -> None:
        super().__init__()
        if norm not in ("", "GN"):
            raise ConfigError(f"{NORM_KEY}: expected '' or 'GN', got '{norm}'")
        self.in_features = list(in_features)
        for name in self.in_features[:-1]:
            self.add_module(f"bottom_up_{name}", FeatureAdaptation(input_shape[name].channels, norm))
        for name in self.in_features:
            self.add_module(name, self._top_down(input_shape[name], conv_dims, common_stride, norm))
        self.multi_scale = multi_scale
        if multi_scale:
            self.trident_convs = nn.ModuleList([_trident_branch(conv_dims)]
                                               + [_trident_branch(conv_dims, d) for d in TRIDENT_DILATIONS])
        self.predictor = nn.Conv2d(conv_dims * (1 + len(TRIDENT_DILATIONS) if multi_scale else 1), out_dims, 1)
        c2_msra_fill(self.predictor)
        self.size_divisibility = max(input_shape[name].stride for name in self.in_features)

    @staticmethod
    def _top_down(shape: ShapeSpec, conv_dims: int, common_stride: int, norm: str) -> nn.Sequential:
        layers: List[nn.Module] = []
        for k in range(max(1, int(math.log2(shape.stride) - math.log2(common_stride)))):
            layers.append(_conv(shape.channels if k == 0 else conv_dims, conv_dims, 3, norm))
            if shape.stride != common_stride:
                # KTNv2 normalises this C -> 4C conv with a C-channel norm (a crash with a norm set): 4C here.
                layers += [_conv(conv_dims, 4 * conv_dims, 1, norm), nn.PixelShuffle(2)]
        return nn.Sequential(*layers)

    @classmethod
    def from_config(cls, cfg: CfgNode, input_shape: Dict[str, ShapeSpec],
                    in_features: List[str]) -> "MultiInstanceDecoderV2":
        """The MID v2 of MODEL.ROI_DENSEPOSE_HEAD.DECODER_* (DECODER_MULTI_SCALE_ON: the trident block)."""
        head = cfg.MODEL.ROI_DENSEPOSE_HEAD
        return cls(input_shape, in_features, head.DECODER_CONV_DIMS, head.DECODER_NUM_CLASSES,
                   head.DECODER_COMMON_STRIDE, head.DECODER_NORM, head.DECODER_MULTI_SCALE_ON)

    def forward(self, features: List[Tensor]) -> Tensor:
        """Maps of ``in_features`` (finest first) -> one (N, out_dims, H/common, W/common) map."""
        adapted = [features[0]]
        for name, feature in zip(self.in_features[:-1], features[1:]):
            adapted.append(feature + getattr(self, f"bottom_up_{name}")(adapted[-1]))
        merged = sum(getattr(self, name)(x) for name, x in zip(self.in_features, adapted))
        if self.multi_scale:
            merged = torch.cat([branch(merged) for branch in self.trident_convs], dim=1)
        return self.predictor(merged)
