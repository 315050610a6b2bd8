"""Axis-aligned boxes as (N, 4) tensors of (x1, y1, x2, y2) in image pixels.

Two conventions, chosen by ``legacy_plus_one``:

* detectron2 (False): boxes are continuous; a box's width is x2 - x1 and an image of width W spans [0, W].
* Detectron v1 / Detectron.pytorch (True), used by LCR-Net: (x2, y2) is the last pixel inside the box, so a
  width is x2 - x1 + 1 and an image of width W spans pixel indices [0, W - 1].

Under the "+1" convention a box is the continuous box with its far corner one pixel further out
(``half_open``), which lets both conventions share one set of formulas.
"""
from typing import Tuple

import torch
from torch import Tensor


def _far_corner_extra(legacy_plus_one: bool) -> float:
    """How far the continuous far corner lies beyond (x2, y2): one pixel under Detectron's convention."""
    return 1.0 if legacy_plus_one else 0.0


def half_open(boxes: Tensor, legacy_plus_one: bool = False) -> Tensor:
    """The boxes as continuous boxes: under the "+1" convention (x2, y2) moves one pixel out."""
    if not legacy_plus_one:
        return boxes
    return torch.cat([boxes[:, :2], boxes[:, 2:] + 1.0], dim=1)


def box_sides(boxes: Tensor, legacy_plus_one: bool = False) -> Tuple[Tensor, Tensor]:
    """Widths and heights of the boxes (x2 - x1 [+ 1], y2 - y1 [+ 1])."""
    extra = _far_corner_extra(legacy_plus_one)
    return boxes[:, 2] - boxes[:, 0] + extra, boxes[:, 3] - boxes[:, 1] + extra


def box_area(boxes: Tensor, legacy_plus_one: bool = False) -> Tensor:
    """Areas of the boxes, (N,); negative sides are not clamped (detectron2 and Detectron alike)."""
    widths, heights = box_sides(boxes, legacy_plus_one)
    return widths * heights


def pairwise_intersection(boxes1: Tensor, boxes2: Tensor, legacy_plus_one: bool = False) -> Tensor:
    """Intersection areas of every pair, (N, M)."""
    boxes1, boxes2 = half_open(boxes1, legacy_plus_one), half_open(boxes2, legacy_plus_one)
    sides = torch.min(boxes1[:, None, 2:], boxes2[:, 2:]) - torch.max(boxes1[:, None, :2], boxes2[:, :2])
    return sides.clamp(min=0).prod(dim=2)


def pairwise_iou(boxes1: Tensor, boxes2: Tensor, legacy_plus_one: bool = False) -> Tensor:
    """Intersection over union of every pair, (N, M); 0 where the boxes do not intersect (so also where the
    union is empty)."""
    inter = pairwise_intersection(boxes1, boxes2, legacy_plus_one)
    union = box_area(boxes1, legacy_plus_one)[:, None] + box_area(boxes2, legacy_plus_one) - inter
    return torch.where(inter > 0, inter / union, torch.zeros((), dtype=inter.dtype, device=inter.device))


def clip_boxes(boxes: Tensor, image_size: Tuple[int, int], legacy_plus_one: bool = False) -> Tensor:
    """The boxes clipped to an image of size (height, width): x to [0, W] (Detectron: [0, W - 1]), y likewise."""
    height, width = image_size
    extra = _far_corner_extra(legacy_plus_one)
    x = boxes[:, 0::2].clamp(min=0, max=width - extra)
    y = boxes[:, 1::2].clamp(min=0, max=height - extra)
    return torch.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], dim=1)


def nonempty(boxes: Tensor, threshold: float = 0.0, legacy_plus_one: bool = False) -> Tensor:
    """Mask of the boxes to keep by size: both sides > threshold (detectron2), or, under the "+1" convention,
    both sides >= threshold (Detectron.pytorch's ``_filter_boxes``)."""
    widths, heights = box_sides(boxes, legacy_plus_one)
    if legacy_plus_one:
        return (widths >= threshold) & (heights >= threshold)
    return (widths > threshold) & (heights > threshold)


def inside_image(boxes: Tensor, image_size: Tuple[int, int], boundary_threshold: float = 0.0) -> Tensor:
    """Mask of the boxes extending at most ``boundary_threshold`` pixels beyond an image of size (height, width).

    The far side is a strict test (x2 < W + threshold) in detectron2 and Detectron alike.
    """
    height, width = image_size
    return ((boxes[:, 0] >= -boundary_threshold) & (boxes[:, 1] >= -boundary_threshold)
            & (boxes[:, 2] < width + boundary_threshold) & (boxes[:, 3] < height + boundary_threshold))
