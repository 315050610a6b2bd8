"""One detection's predictor outputs -> detectron2's chart result (densepose.md 2.5).

The S, I, U, V maps are resized bilinearly (align_corners False) to the box's integer size
(h, w) = (max(int(y2 - y1), 1), max(int(x2 - x1), 1)) (detectron2 truncates the float width and height);
a pixel's label is argmax I where argmax S > 0, else 0; its U, V are the resized U, V channels of its label
(0 on the background).
"""
from dataclasses import dataclass
from typing import Tuple

import torch
import torch.nn.functional as F


@dataclass
class DensePoseChartResult:
    """labels (h, w) uint8 chart index (0 = background); uv (2, h, w) float32 in [0, 1]; box (x, y, w, h) ints."""

    labels: torch.Tensor
    uv: torch.Tensor
    box_xywh: Tuple[int, int, int, int]


def int_box_xywh(box_xyxy: torch.Tensor) -> Tuple[int, int, int, int]:
    """(x, y, w, h) of an x1y1x2y2 box, each truncated towards zero (detectron2's ``make_int_box``)."""
    # Width and height subtracted in the box's dtype, as detectron2's BoxMode.convert: in float32, x2 - x1 can
    # round up to an integer that the exact difference falls just short of, and the truncated size follows.
    x, y, w, h = torch.cat([box_xyxy[:2], box_xyxy[2:] - box_xyxy[:2]]).tolist()
    return int(x), int(y), int(w), int(h)


def _resized(maps: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """(C, H, W) -> (C, h, w), bilinear without corner alignment."""
    return F.interpolate(maps[None], size, mode="bilinear", align_corners=False)[0]


def chart_result(coarse_segm: torch.Tensor, fine_segm: torch.Tensor, u: torch.Tensor, v: torch.Tensor,
                 box_xyxy: torch.Tensor) -> DensePoseChartResult:
    """The chart result of one detection from its (C, H, W) S, I, U, V maps and its box (image pixels)."""
    x, y, w, h = int_box_xywh(box_xyxy)
    size = (max(h, 1), max(w, 1))
    foreground = _resized(coarse_segm, size).argmax(dim=0) > 0
    labels = _resized(fine_segm, size).argmax(dim=0) * foreground
    index = labels[None]
    uv = torch.cat([_resized(u, size).gather(0, index), _resized(v, size).gather(0, index)])
    # Label 0 carries no coordinates; the rest are regressions expected, not guaranteed, in [0, 1].
    uv = (uv * (labels > 0)).clamp(0, 1).float()
    return DensePoseChartResult(labels.to(torch.uint8), uv, (x, y, w, h))
