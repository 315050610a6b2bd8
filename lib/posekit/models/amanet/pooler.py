"""``MultiROIPooler``: every ROI pooled from every pyramid level at a level-dependent size (densepose.md 4.1).

Unlike the box head's ``ROIPooler`` there is no level assignment: AMANet's head runs one path per level. Sizes
are AMANet's (P2..P5): 32/16/16/8 in AMAv2 (``POOLER_RESOLUTION`` 32), 28/14/14/7 in AMA v1 (28).
"""
from typing import List, Sequence

from torch import Tensor, nn

from ...ops import roi_align
from ...ops.roi_align import boxes_to_rois
from ..detection.poolers import ALIGNED_BY_POOLER_TYPE


def level_sizes(resolution: int) -> List[int]:
    """Pooled side of P2, P3, P4, P5 for a P2 side of ``resolution`` (P3 and P4 share a size, as released)."""
    if resolution % 4:
        raise ValueError(f"the AMA pooler's P2 side must be a multiple of 4, got {resolution}")
    return [resolution, resolution // 2, resolution // 2, resolution // 4]


class MultiROIPooler(nn.Module):
    """ROIAlign of every box from each of ``len(scales)`` maps, map k at ``output_sizes[k]`` square."""

    def __init__(self, output_sizes: Sequence[int], scales: Sequence[float], sampling_ratio: int,
                 pooler_type: str) -> None:
        super().__init__()
        if pooler_type not in ALIGNED_BY_POOLER_TYPE:
            raise ValueError(f"pooler type {pooler_type!r} is not supported; use one of "
                             f"{sorted(ALIGNED_BY_POOLER_TYPE)}")
        if len(output_sizes) != len(scales):
            raise ValueError(f"MultiROIPooler: {len(output_sizes)} output sizes for {len(scales)} scales")
        self.output_sizes = [int(size) for size in output_sizes]
        self.scales = [float(scale) for scale in scales]
        self.sampling_ratio = int(sampling_ratio)
        self.aligned = ALIGNED_BY_POOLER_TYPE[pooler_type]

    def forward(self, features: Sequence[Tensor], box_lists: Sequence[Tensor]) -> List[Tensor]:
        """Per-image boxes (input-image pixels) -> one (R, C, S_k, S_k) tensor per level, in box order."""
        if len(features) != len(self.scales):
            raise ValueError(f"MultiROIPooler has {len(self.scales)} scales, got {len(features)} feature maps")
        rois = boxes_to_rois(list(box_lists)).to(features[0].dtype)
        return [roi_align(feature, rois, (size, size), scale, self.sampling_ratio, self.aligned)
                for feature, size, scale in zip(features, self.output_sizes, self.scales)]
