"""DensePose R-CNN training targets and losses (densepose.md 2.4), with detectron2 DensePose's semantics.

``select_densepose_rois`` keeps the foreground ROIs whose IoU with their matched ground-truth box is strictly
above MODEL.ROI_DENSEPOSE_HEAD.FG_IOU_THRESHOLD and whose ground truth has DensePose points. ``DensePoseLosses``
turns the predictor outputs on those ROIs into

* ``loss_densepose_U`` / ``_V``: smooth-L1 (beta 1) summed over the points inside their ROI with a chart > 0,
  between the point's U (V) and the map of its chart sampled bilinearly at the point, x POINT_REGRESSION_WEIGHTS;
* ``loss_densepose_I``: cross-entropy of the 25 chart logits sampled at the points inside their ROI, mean over
  those points, x PART_WEIGHTS;
* ``loss_densepose_S``: cross-entropy of the coarse segmentation over every pixel of the ROIs, against the
  14 part masks painted on the ground-truth box and resampled into the ROI (2 channels: person / background;
  15: the part labels), mean, x INDEX_WEIGHTS;
* ``loss_densepose_M`` (predictors with a body mask, given its weight: KTN's BODY_MASK_WEIGHTS): the same
  cross-entropy of the 2-channel M against person / background.

A batch without DensePose points gives zero-valued losses that still depend on every output, so that every
parameter of the branch receives a (zero) gradient, as distributed training requires.
"""
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pycocotools.mask as mask_utils
import torch
import torch.nn.functional as F
from torch import Tensor
from yacs.config import CfgNode

from ...structures import Instances
from ...structures.boxes import box_area
from ...structures.instances import DensePosePoints
from ...utils.errors import ConfigError

Losses = Dict[str, Tensor]
MASK_CANVAS = 256  # the part masks' canvas and the points' frame span the ground-truth box in 256 units
LOSS_NAMES = ("loss_densepose_U", "loss_densepose_V", "loss_densepose_I", "loss_densepose_S")
# Segmentation outputs -> their loss names (present when the predictor has the output).
SEGM_LOSSES = {"coarse_segm": "loss_densepose_S", "body_mask": "loss_densepose_M"}


def matched_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """IoU of each box of ``boxes1`` with the box of ``boxes2`` in the same row, (N,) (continuous boxes)."""
    top_left = torch.max(boxes1[:, :2], boxes2[:, :2])
    bottom_right = torch.min(boxes1[:, 2:], boxes2[:, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=1)
    return inter / (box_area(boxes1) + box_area(boxes2) - inter)


def select_densepose_rois(foreground: Sequence[Instances], iou_threshold: float) -> List[Instances]:
    """Per image, the foreground ROIs with IoU > ``iou_threshold`` whose ground truth has DensePose points
    (an image whose ROIs carry no ``gt_densepose`` field keeps none)."""
    selected = []
    for rois in foreground:
        if not rois.has("gt_densepose"):
            selected.append(rois[[]])
            continue
        close = matched_iou(rois.gt_boxes, rois.proposal_boxes) > iou_threshold
        annotated = torch.tensor([points is not None for points in rois.gt_densepose], dtype=torch.bool,
                                 device=close.device)
        selected.append(rois[close & annotated])
    return selected


def _xywh(boxes: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Columns x0, y0, w, h of (N, 4) XYXY boxes."""
    return boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]


def grid_positions(coord: Tensor, gt_start: Tensor, gt_size: Tensor, roi_start: Tensor, roi_size: Tensor,
                   heatmap_size: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Lower cell, upper cell, upper-cell weight and validity along one axis of points given in the gt box's
    256-unit frame, on a ``heatmap_size``-cell map spanning the ROI (no half-cell offset, as detectron2)."""
    image_coord = gt_start + coord * gt_size / float(MASK_CANVAS)
    offset = image_coord - roi_start
    valid = (offset >= 0) & (offset < roi_size)
    grid = offset * heatmap_size / roi_size
    low = grid.floor().long().clamp(0, heatmap_size - 1)
    high = (low + 1).clamp(max=heatmap_size - 1)
    # On the last cell there is no upper neighbour: the point snaps to the cell (weight 0).
    weight = torch.min(high.to(grid.dtype), grid) - low.to(grid.dtype)
    return low, high, weight, valid


@dataclass
class PointTargets:
    """Every DensePose point of a batch of ROIs, with its ROI, bilinear cells and weights on the heatmap."""

    roi: Tensor
    x_low: Tensor
    x_high: Tensor
    y_low: Tensor
    y_high: Tensor
    x_weight: Tensor
    y_weight: Tensor
    valid: Tensor
    chart: Tensor
    u: Tensor
    v: Tensor

    def sample(self, maps: Tensor, channel: Optional[Tensor] = None) -> Tensor:
        """Bilinear samples of (R, C, H, W) ``maps`` at the points: (P, C), or (P,) of one channel per point."""
        if channel is None:
            # Channels last, so that one cell lookup returns all C values.
            channels_last = maps.permute(0, 2, 3, 1)
            values = [channels_last[self.roi, y, x] for y, x in self._corners()]
            weights = [w[:, None] for w in self._corner_weights()]
        else:
            values = [maps[self.roi, channel, y, x] for y, x in self._corners()]
            weights = self._corner_weights()
        return sum(value * weight for value, weight in zip(values, weights))

    def _corners(self) -> List[Tuple[Tensor, Tensor]]:
        """(row, column) of the four cells around each point."""
        return [(self.y_low, self.x_low), (self.y_low, self.x_high), (self.y_high, self.x_low),
                (self.y_high, self.x_high)]

    def _corner_weights(self) -> List[Tensor]:
        """The bilinear weight of each of ``_corners``."""
        wx, wy = self.x_weight, self.y_weight
        return [(1 - wx) * (1 - wy), wx * (1 - wy), (1 - wx) * wy, wx * wy]


def point_targets(gt_boxes: Tensor, roi_boxes: Tensor, annotations: Sequence[Optional[DensePosePoints]],
                  heatmap_size: Tuple[int, int]) -> Optional[PointTargets]:
    """The points of each ROI's ground truth placed on its (H, W) heatmap; None when there are no points."""
    rois = [k for k, points in enumerate(annotations) if points is not None and len(points)]
    if not rois:
        return None
    device = gt_boxes.device
    points = [annotations[k].to(device) for k in rois]
    counts = torch.tensor([len(p) for p in points], device=device)
    roi = torch.repeat_interleave(torch.tensor(rois, device=device), counts)
    gx0, gy0, gw, gh = (c[roi] for c in _xywh(gt_boxes))
    rx0, ry0, rw, rh = (c[roi] for c in _xywh(roi_boxes))
    x_low, x_high, x_weight, x_valid = grid_positions(torch.cat([p.x for p in points]), gx0, gw, rx0, rw,
                                                      heatmap_size[1])
    y_low, y_high, y_weight, y_valid = grid_positions(torch.cat([p.y for p in points]), gy0, gh, ry0, rh,
                                                      heatmap_size[0])
    return PointTargets(roi, x_low, x_high, y_low, y_high, x_weight, y_weight, x_valid & y_valid,
                        torch.cat([p.chart for p in points]), torch.cat([p.u for p in points]),
                        torch.cat([p.v for p in points]))


def _decoded(rle: Dict[str, Any]) -> np.ndarray:
    """A COCO RLE (compressed, as str or bytes, or uncompressed counts) as an (h, w) uint8 mask."""
    height, width = rle["size"]
    if isinstance(rle["counts"], list):
        rle = mask_utils.frPyObjects(rle, height, width)
    elif isinstance(rle["counts"], str):
        rle = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    return mask_utils.decode(rle)


def part_labels(part_masks: Sequence[Any]) -> Tensor:
    """The 256 x 256 label canvas (float32, 0 = background) of 14 part masks, later parts painted over earlier."""
    labels = torch.zeros((MASK_CANVAS, MASK_CANVAS), dtype=torch.float32)
    for part, rle in enumerate(part_masks, start=1):
        if rle:
            labels[torch.from_numpy(_decoded(rle) > 0)] = float(part)
    return labels


def resample_to_rois(canvases: Tensor, gt_boxes: Tensor, roi_boxes: Tensor, size: Tuple[int, int]) -> Tensor:
    """(N, h, w) canvases spanning the gt boxes -> (N, H, W) nearest samples on the ROIs, 0 outside the canvas.

    Output cell j samples the canvas at fraction j / W of the ROI (cell corners, not centres) with the canvas
    edges at -1 and 1 (align_corners), as detectron2's ``resample_data``.
    """
    gx0, gy0, gw, gh = _xywh(gt_boxes)
    rx0, ry0, rw, rh = _xywh(roi_boxes)
    x_start, x_end = 2 * (rx0 - gx0) / gw - 1, 2 * (rx0 + rw - gx0) / gw - 1
    y_start, y_end = 2 * (ry0 - gy0) / gh - 1, 2 * (ry0 + rh - gy0) / gh - 1
    height, width = size
    fx = torch.arange(width, dtype=torch.float32, device=canvases.device) / width
    fy = torch.arange(height, dtype=torch.float32, device=canvases.device) / height
    grid_x = x_start[:, None, None] + fx[None, None, :] * (x_end - x_start)[:, None, None]
    grid_y = y_start[:, None, None] + fy[None, :, None] * (y_end - y_start)[:, None, None]
    grid = torch.stack(torch.broadcast_tensors(grid_x, grid_y), dim=3)
    return F.grid_sample(canvases[:, None], grid, mode="nearest", padding_mode="zeros", align_corners=True)[:, 0]


def roi_part_labels(gt_boxes: Tensor, roi_boxes: Tensor, annotations: Sequence[Optional[DensePosePoints]],
                    size: Tuple[int, int]) -> Optional[Tuple[Tensor, Tensor]]:
    """(ROI indices, (n, H, W) int64 part labels 0..14 resampled into those ROIs) of the ROIs whose person has
    points and part masks; None when none has."""
    rois = [k for k, points in enumerate(annotations)
            if points is not None and len(points) and points.part_masks is not None]
    if not rois:
        return None
    painted: Dict[int, Tensor] = {}  # a person's ROIs share its canvas: decode its 14 RLE masks once
    for k in rois:
        if id(annotations[k]) not in painted:
            painted[id(annotations[k])] = part_labels(annotations[k].part_masks)
    canvases = torch.stack([painted[id(annotations[k])] for k in rois]).to(gt_boxes.device)
    index = torch.tensor(rois, device=gt_boxes.device)
    return index, resample_to_rois(canvases, gt_boxes[index], roi_boxes[index], size).long()


def zero_loss(outputs: Dict[str, Tensor]) -> Tensor:
    """A zero that depends on every output, so that all of the branch's parameters get gradients."""
    return sum(value.sum() for value in outputs.values()) * 0


class DensePoseLosses:
    """U, V, I and S (and M) losses of the predictor outputs on the selected ROIs (densepose.md 2.4, 3.8)."""

    def __init__(self, point_weight: float, part_weight: float, segm_weight: float, segm_channels: int,
                 body_mask_weight: Optional[float] = None) -> None:
        self.point_weight = point_weight
        self.part_weight = part_weight
        self.segm_weight = segm_weight
        self.segm_channels = segm_channels
        self.body_mask_weight = body_mask_weight

    @classmethod
    def from_config(cls, cfg: CfgNode) -> "DensePoseLosses":
        """Weights of MODEL.ROI_DENSEPOSE_HEAD (INDEX_WEIGHTS weights S, PART_WEIGHTS weights I)."""
        head = cfg.MODEL.ROI_DENSEPOSE_HEAD
        return cls(head.POINT_REGRESSION_WEIGHTS, head.PART_WEIGHTS, head.INDEX_WEIGHTS,
                   head.NUM_COARSE_SEGM_CHANNELS)

    def __call__(self, rois: Sequence[Instances], outputs: Dict[str, Tensor]) -> Losses:
        """U, V, I and the losses of the segmentation outputs there are; ``outputs`` are the predictor's on the
        concatenated ``proposal_boxes`` of ``rois``."""
        if "coarse_segm" not in outputs and self.body_mask_weight is None:
            raise ConfigError("MODEL.ROI_DENSEPOSE_HEAD.PREDICTOR_NAME: training a predictor without the S output "
                              "(the RCNN* body mask) needs a KTN config (BODY_MASK_WEIGHTS)")
        zero = zero_loss(outputs)
        names = LOSS_NAMES[:3] + tuple(name for key, name in SEGM_LOSSES.items() if key in outputs)
        if not sum(len(image) for image in rois):
            return dict.fromkeys(names, zero)
        gt_boxes = torch.cat([image.gt_boxes for image in rois])
        roi_boxes = torch.cat([image.proposal_boxes for image in rois])
        annotations = [points for image in rois for points in image.gt_densepose]
        targets = point_targets(gt_boxes, roi_boxes, annotations, tuple(outputs["u"].shape[2:]))
        if targets is None:
            return dict.fromkeys(names, zero)
        losses = self._point_losses(targets, outputs, zero)
        losses.update(self._segm_losses(gt_boxes, roi_boxes, annotations, outputs, zero))
        return losses

    def _point_losses(self, targets: PointTargets, outputs: Dict[str, Tensor], zero: Tensor) -> Losses:
        """U, V on the valid points with a chart; I on all valid points (zero when none is valid)."""
        on_chart = targets.valid & (targets.chart > 0)
        losses = {}
        for name, gt in (("U", targets.u), ("V", targets.v)):
            estimate = targets.sample(outputs[name.lower()], targets.chart)
            losses["loss_densepose_" + name] = F.smooth_l1_loss(
                estimate[on_chart], gt[on_chart], beta=1.0, reduction="sum") * self.point_weight
        if targets.valid.any():
            logits = targets.sample(outputs["fine_segm"])[targets.valid]
            losses["loss_densepose_I"] = F.cross_entropy(logits, targets.chart[targets.valid]) * self.part_weight
        else:  # detectron2 would take the mean of nothing (NaN)
            losses["loss_densepose_I"] = zero
        return losses

    def _segm_losses(self, gt_boxes: Tensor, roi_boxes: Tensor, annotations: Sequence[Optional[DensePosePoints]],
                     outputs: Dict[str, Tensor], zero: Tensor) -> Losses:
        """Cross-entropy over the S (and M) maps of the ROIs with points and part masks (zero when there are
        none); the part labels are painted once for both."""
        present = {key: outputs[key] for key in SEGM_LOSSES if key in outputs}
        painted = roi_part_labels(gt_boxes, roi_boxes, annotations, tuple(next(iter(present.values())).shape[2:]))
        if painted is None:
            return {SEGM_LOSSES[key]: zero for key in present}
        index, labels = painted
        losses = {}
        if "coarse_segm" in present:
            target = labels.clamp(max=1) if self.segm_channels == 2 else labels
            losses["loss_densepose_S"] = F.cross_entropy(present["coarse_segm"][index], target) * self.segm_weight
        if "body_mask" in present:
            losses["loss_densepose_M"] = (F.cross_entropy(present["body_mask"][index], labels.clamp(max=1))
                                          * self.body_mask_weight)
        return losses
