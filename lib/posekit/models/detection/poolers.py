"""ROI feature pooling from one feature map (C4) or a pyramid (FPN), as detectron2's ROIPooler (densepose.md 1.3)."""
import math
from typing import List, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ...ops import roi_align
from ...ops.roi_align import boxes_to_rois
from ...structures.boxes import box_area

# ROIAlign (Detectron's and the DensePose configs') samples without the half-pixel shift; ROIAlignV2 with it.
ALIGNED_BY_POOLER_TYPE = {"ROIAlign": False, "ROIAlignV2": True}


def assign_boxes_to_levels(box_lists: List[Tensor], min_level: int, max_level: int, canonical_box_size: int = 224,
                           canonical_level: int = 4) -> Tensor:
    """Pyramid level of every box of the concatenated lists, as an offset from ``min_level`` (int64).

    FPN's equation (1): floor(canonical_level + log2(sqrt(area) / canonical_box_size)), clamped to the levels
    there are; a tiny epsilon keeps boxes of exactly twice the canonical size on the upper level.
    """
    sizes = torch.sqrt(torch.cat([box_area(boxes) for boxes in box_lists]))
    levels = torch.floor(canonical_level + torch.log2(sizes / canonical_box_size + 1e-8))
    return levels.clamp(min=min_level, max=max_level).to(torch.int64) - min_level


def _level_of_scale(scale: float) -> int:
    """The pyramid level of a feature map of scale 1 / 2^level."""
    level = -math.log2(scale)
    if not math.isclose(level, round(level)):
        raise ValueError(f"ROIPooler scales must be 1 / (power of 2), got {scale}")
    return int(round(level))


class ROIPooler(nn.Module):
    """Pool every box from the feature map of its pyramid level with ROIAlign, to (R, C, *output_size).

    ``scales`` are 1 / stride of the feature maps, finest first, forming a pyramid of factor 2; with one
    scale every box is pooled from that map (C4).
    """

    def __init__(self, output_size: Union[int, Tuple[int, int]], scales: Sequence[float], sampling_ratio: int,
                 pooler_type: str, canonical_box_size: int = 224, canonical_level: int = 4):
        super().__init__()
        if pooler_type not in ALIGNED_BY_POOLER_TYPE:
            raise ValueError(f"pooler type {pooler_type!r} is not supported; use one of "
                             f"{sorted(ALIGNED_BY_POOLER_TYPE)}")
        self.output_size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
        self.scales = [float(s) for s in scales]
        self.sampling_ratio = int(sampling_ratio)
        self.aligned = ALIGNED_BY_POOLER_TYPE[pooler_type]
        self.min_level, self.max_level = _level_of_scale(self.scales[0]), _level_of_scale(self.scales[-1])
        if len(self.scales) != self.max_level - self.min_level + 1:
            raise ValueError(f"ROIPooler scales {self.scales} do not form a pyramid of factor 2")
        self.canonical_box_size = canonical_box_size
        self.canonical_level = canonical_level

    def _pool(self, feature: Tensor, rois: Tensor, scale: float) -> Tensor:
        """ROIAlign of (K, 5) rois from one feature map."""
        return roi_align(feature, rois, self.output_size, scale, self.sampling_ratio, self.aligned)

    def forward(self, features: List[Tensor], box_lists: List[Tensor]) -> Tensor:
        """Pool per-image boxes (in input-image pixels) from ``features`` (one map per scale): (R, C, S, S) in the
        order of the concatenated boxes."""
        if len(features) != len(self.scales):
            raise ValueError(f"ROIPooler has {len(self.scales)} scales, got {len(features)} feature maps")
        if len(box_lists) != features[0].shape[0]:
            raise ValueError(f"ROIPooler got {len(box_lists)} box lists for a batch of {features[0].shape[0]}")
        channels = features[0].shape[1]
        if not box_lists:
            return features[0].new_zeros((0, channels) + self.output_size)
        rois = boxes_to_rois(box_lists).to(features[0].dtype)
        if len(features) == 1:
            return self._pool(features[0], rois, self.scales[0])
        levels = assign_boxes_to_levels(box_lists, self.min_level, self.max_level, self.canonical_box_size,
                                        self.canonical_level)
        output = features[0].new_zeros((len(rois), channels) + self.output_size)
        for level, (feature, scale) in enumerate(zip(features, self.scales)):
            index = torch.nonzero(levels == level, as_tuple=True)[0]
            output[index] = self._pool(feature, rois[index], scale)
        return output
