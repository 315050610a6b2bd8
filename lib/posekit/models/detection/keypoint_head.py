"""Keypoint R-CNN's keypoint branch pieces (detectron2 ``roi_heads/keypoint_head.py`` semantics), generic enough
for KTN's keypoint branch (densepose.md 3.7) and AMANet's.

* ``keypoint_deconv`` / ``upsample`` / ``msra_fill_all``: the x2 transposed conv (k4 s2 p1) giving keypoint logits,
  the bilinear upsampling after it, and detectron2's keypoint-head initialisation.
* ``keypoints_to_heatmap``: ground-truth keypoints -> one cell index per (ROI, keypoint) on a Z x Z map spanning
  the ROI, and whether it is valid (visible and inside).
* ``keypoint_rcnn_loss``: softmax cross-entropy over the Z*Z cells of each valid (ROI, keypoint), summed and
  divided by the number of valid ones (or by a given normaliser).
* ``heatmaps_to_keypoints`` / ``keypoint_rcnn_inference``: logits resized (bicubic) to the box's ceiled size,
  arg-max, cell centre (+0.5) mapped back to image pixels; ``pred_keypoints`` (R, K, 3) = x, y, score.
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...structures import Instances


def keypoint_deconv(in_channels: int, num_keypoints: int, kernel_size: int = 4) -> nn.ConvTranspose2d:
    """The x2 transposed conv producing keypoint logits (padding kernel/2 - 1: exact doubling for even kernels)."""
    return nn.ConvTranspose2d(in_channels, num_keypoints, kernel_size, stride=2, padding=kernel_size // 2 - 1)


def msra_fill_all(module: nn.Module) -> None:
    """Kaiming-normal (fan_out, ReLU gain) weights and zero biases for every parameter (detectron2's keypoint
    head init; a ConvTranspose2d's fan_out is its in_channels x k x k, as PyTorch computes it)."""
    for name, param in module.named_parameters():
        if name.endswith("bias"):
            nn.init.zeros_(param)
        else:
            nn.init.kaiming_normal_(param, mode="fan_out", nonlinearity="relu")


def upsample(x: Tensor, scale: int) -> Tensor:
    """Bilinear x ``scale`` (align_corners False); identity for 1."""
    if scale == 1:
        return x
    return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)


def keypoints_to_heatmap(keypoints: Tensor, rois: Tensor, heatmap_size: int) -> Tuple[Tensor, Tensor]:
    """Cell index y * Z + x (R, K) of (R, K, 3) keypoints on a Z x Z map over (R, 4) XYXY ROIs, and validity.

    A keypoint falls in cell floor((x - x0) Z / (x1 - x0)); one exactly on the right / bottom edge goes to the last
    cell; it is valid when visible (v > 0) and inside the map.
    """
    x0, y0, x1, y1 = (rois[:, k:k + 1] for k in range(4))
    x, y = keypoints[..., 0], keypoints[..., 1]
    cell_x = ((x - x0) * (heatmap_size / (x1 - x0))).floor().long()
    cell_y = ((y - y0) * (heatmap_size / (y1 - y0))).floor().long()
    cell_x[x == x1] = heatmap_size - 1
    cell_y[y == y1] = heatmap_size - 1
    inside = (cell_x >= 0) & (cell_y >= 0) & (cell_x < heatmap_size) & (cell_y < heatmap_size)
    valid = inside & (keypoints[..., 2] > 0)
    return (cell_y * heatmap_size + cell_x) * valid, valid


def keypoint_rcnn_loss(logits: Tensor, instances: Sequence[Instances], normalizer: Optional[float] = None,
                       box_field: str = "proposal_boxes") -> Tensor:
    """Cross-entropy over the cells of each valid (ROI, keypoint) of (R, K, Z, Z) ``logits`` (ROIs = the
    concatenated ``box_field`` of ``instances``, with ``gt_keypoints``), summed / ``normalizer`` (default: the
    number of valid keypoints); a zero tied to ``logits`` when none is valid."""
    rois, keypoints = [], []
    for image in instances:
        if len(image):
            rois.append(image.get(box_field))
            keypoints.append(image.gt_keypoints)
    if not rois:
        return logits.sum() * 0
    targets, valid = keypoints_to_heatmap(torch.cat(keypoints), torch.cat(rois), logits.shape[2])
    valid = valid.flatten()
    if not valid.any():
        return logits.sum() * 0
    flat = logits.flatten(2).flatten(0, 1)  # (R K, Z Z)
    loss = F.cross_entropy(flat[valid], targets.flatten()[valid], reduction="sum")
    return loss / (valid.sum() if normalizer is None else normalizer)


def heatmaps_to_keypoints(maps: Tensor, rois: Tensor) -> Tensor:
    """(R, K, 4) x, y (image pixels), logit and score of (R, K, Z, Z) logits over (R, 4) XYXY ROIs.

    Each map is resized (bicubic) to the box's ceiled size; the arg-max cell's centre (+0.5) is scaled back by
    size / ceiled size; the score is exp(logit - max) normalised by the sum over the Z x Z map (detectron2).
    """
    results = maps.new_zeros((len(rois), maps.shape[1], 4))
    widths = (rois[:, 2] - rois[:, 0]).clamp(min=1)
    heights = (rois[:, 3] - rois[:, 1]).clamp(min=1)
    widths_ceil, heights_ceil = widths.ceil(), heights.ceil()
    index = torch.arange(maps.shape[1], device=maps.device)
    for i in range(len(rois)):
        size = (int(heights_ceil[i]), int(widths_ceil[i]))
        roi_map = F.interpolate(maps[i:i + 1], size=size, mode="bicubic", align_corners=False)[0]
        peak = roi_map.flatten(1).max(dim=1).values[:, None, None]
        scores = (roi_map - peak).exp() / (maps[i] - peak).exp().sum(dim=(1, 2), keepdim=True)
        position = roi_map.flatten(1).argmax(dim=1)
        y_cell, x_cell = position // size[1], position % size[1]
        results[i, :, 0] = (x_cell.to(maps.dtype) + 0.5) * widths[i] / widths_ceil[i] + rois[i, 0]
        results[i, :, 1] = (y_cell.to(maps.dtype) + 0.5) * heights[i] / heights_ceil[i] + rois[i, 1]
        results[i, :, 2] = roi_map[index, y_cell, x_cell]
        results[i, :, 3] = scores[index, y_cell, x_cell]
    return results


def keypoint_rcnn_inference(logits: Tensor, detections: List[Instances]) -> None:
    """Set ``pred_keypoints`` (n, K, 3: x, y, score) on each image's detections from the concatenated logits."""
    boxes = torch.cat([image.pred_boxes for image in detections]) if detections else logits.new_zeros((0, 4))
    results = heatmaps_to_keypoints(logits.detach(), boxes.detach())[:, :, [0, 1, 3]]
    for image, part in zip(detections, results.split([len(image) for image in detections])):
        image.pred_keypoints = part


def select_with_visible_keypoints(rois: Instances, box_field: str = "proposal_boxes") -> Instances:
    """The ROIs with at least one visible (v > 0) ground-truth keypoint inside their box, edges included
    (detectron2's ``select_proposals_with_visible_keypoints``, per image)."""
    keypoints = rois.gt_keypoints
    boxes = rois.get(box_field)[:, None]
    inside = ((keypoints[..., 0] >= boxes[..., 0]) & (keypoints[..., 0] <= boxes[..., 2])
              & (keypoints[..., 1] >= boxes[..., 1]) & (keypoints[..., 1] <= boxes[..., 3]))
    return rois[(inside & (keypoints[..., 2] > 0)).any(dim=1)]
