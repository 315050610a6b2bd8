"""Vectorised pure-PyTorch versions of posekit's compiled ops (differentiable through autograd).

They define the same numbers as the kernels and serve as the baseline in bench/ops.py. They take the
already-validated, normalised arguments of the kernels (pairs for stride/padding/dilation, Tensor[K, 5]
boxes) and trade memory for simplicity, so they are meant for small and medium inputs.
"""
from typing import List, Optional, Tuple

import torch
from torch import Tensor

# Boxes processed at once by roi_align: bounds the gathered corner values to about 64M elements.
_ROI_CHUNK_ELEMENTS = 1 << 26


def _gather_corners(table: Tensor, corners: List[Tuple[Tensor, Tensor]]) -> Tensor:
    """Sum of weight * table[index] over bilinear corners; table is (rows, C), result (*index.shape, C)."""
    total = None
    for index, weight in corners:
        term = table[index] * weight.unsqueeze(-1)
        total = term if total is None else total + term
    return total


def _deform_corners(y: Tensor, x: Tensor, height: int, width: int, row_base: Tensor):
    """Corner rows and weights of deformable sampling: out-of-image corners count as zero."""
    inside = (y > -1) & (y < height) & (x > -1) & (x < width)
    y0, x0 = y.floor(), x.floor()
    ly, lx = y - y0, x - x0
    corners = []
    for yi, wy in ((y0, 1 - ly), (y0 + 1, ly)):
        for xi, wx in ((x0, 1 - lx), (x0 + 1, lx)):
            valid = inside & (yi >= 0) & (yi <= height - 1) & (xi >= 0) & (xi <= width - 1)
            row = row_base + yi.clamp(0, height - 1).long() * width + xi.clamp(0, width - 1).long()
            corners.append((row, wy * wx * valid))
    return corners


def deform_conv2d(input: Tensor, offset: Tensor, weight: Tensor, bias: Optional[Tensor],
                  stride: Tuple[int, int], padding: Tuple[int, int], dilation: Tuple[int, int],
                  mask: Optional[Tensor]) -> Tensor:
    """Deformable convolution (v1, or v2 with ``mask``) with torchvision's offset layout."""
    batch, channels, height, width = input.shape
    out_channels, group_channels, kh, kw = weight.shape
    groups = channels // group_channels
    taps = kh * kw
    offset_groups = offset.shape[1] // (2 * taps)
    out_h, out_w = offset.shape[-2:]
    device, dtype = input.device, input.dtype

    tap_y = (torch.arange(kh, device=device) * dilation[0]).repeat_interleave(kw).view(1, 1, taps, 1, 1)
    tap_x = (torch.arange(kw, device=device) * dilation[1]).repeat(kh).view(1, 1, taps, 1, 1)
    grid_y = (torch.arange(out_h, device=device) * stride[0] - padding[0]).view(1, 1, 1, out_h, 1)
    grid_x = (torch.arange(out_w, device=device) * stride[1] - padding[1]).view(1, 1, 1, 1, out_w)
    pairs = offset.view(batch, offset_groups, taps, 2, out_h, out_w)
    y = (grid_y + tap_y).to(dtype) + pairs[:, :, :, 0]
    x = (grid_x + tap_x).to(dtype) + pairs[:, :, :, 1]

    # Rows of (batch, offset group, pixel); columns are the channels of that offset group.
    table = input.view(batch, offset_groups, channels // offset_groups, height * width)
    table = table.permute(0, 1, 3, 2).reshape(-1, channels // offset_groups)
    row_base = torch.arange(batch * offset_groups, device=device).view(batch, offset_groups, 1, 1, 1)
    samples = _gather_corners(table, _deform_corners(y, x, height, width, row_base * height * width))
    if mask is not None:
        samples = samples * mask.view(batch, offset_groups, taps, out_h, out_w, 1)

    # columns: (batch, groups, in-channels-per-group * taps, pixels) in the weight's (c, kh, kw) order
    columns = samples.permute(0, 1, 5, 2, 3, 4).reshape(batch, groups, group_channels * taps, out_h * out_w)
    out = weight.view(groups, out_channels // groups, group_channels * taps) @ columns
    out = out.view(batch, out_channels, out_h, out_w)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


def _roi_sample_coords(start: Tensor, bin_size: Tensor, grid: Tensor, bins: int, max_grid: int) -> Tensor:
    """Sample coordinates (K, bins, max_grid) along one axis: grid points at the centres of sub-bins."""
    bin_index = torch.arange(bins, device=start.device, dtype=start.dtype).view(1, -1, 1)
    sub_index = torch.arange(max_grid, device=start.device, dtype=start.dtype).view(1, 1, -1) + 0.5
    step = bin_size / grid.clamp(min=1).to(start.dtype)
    return start.view(-1, 1, 1) + bin_index * bin_size.view(-1, 1, 1) + sub_index * step.view(-1, 1, 1)


def _roi_axis(coord: Tensor, size: int):
    """RoIAlign clamping along one axis: returns (low, high, weight of high, inside) per sample."""
    inside = (coord >= -1) & (coord <= size)
    coord = coord.clamp(min=0)
    low = coord.floor().clamp(max=size - 1)
    at_edge = low >= size - 1
    coord = torch.where(at_edge, low, coord)
    high = torch.where(at_edge, low, low + 1)
    return low.long(), high.long(), coord - low, inside


def _roi_align_chunk(table: Tensor, height: int, width: int, rois: Tensor, output_size: Tuple[int, int],
                     spatial_scale: float, sampling_ratio: int, aligned: bool) -> Tensor:
    """RoIAlign of a chunk of boxes; table holds the feature map as (batch * H * W, C) rows."""
    pooled_h, pooled_w = output_size
    shift = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (rois[:, i] * spatial_scale - shift for i in range(1, 5))
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    bin_h, bin_w = roi_h / pooled_h, roi_w / pooled_w
    if sampling_ratio > 0:
        grid_h = torch.full_like(bin_h, sampling_ratio, dtype=torch.long)
        grid_w = torch.full_like(bin_w, sampling_ratio, dtype=torch.long)
    else:
        grid_h, grid_w = bin_h.ceil().clamp(min=0).long(), bin_w.ceil().clamp(min=0).long()
    max_h, max_w = max(int(grid_h.max()), 1), max(int(grid_w.max()), 1)

    y_low, y_high, ly, y_in = _roi_axis(_roi_sample_coords(y1, bin_h, grid_h, pooled_h, max_h), height)
    x_low, x_high, lx, x_in = _roi_axis(_roi_sample_coords(x1, bin_w, grid_w, pooled_w, max_w), width)
    # Padding samples beyond a box's own grid get weight zero.
    y_in = y_in & (torch.arange(max_h, device=rois.device) < grid_h.view(-1, 1, 1))
    x_in = x_in & (torch.arange(max_w, device=rois.device) < grid_w.view(-1, 1, 1))
    count = (grid_h * grid_w).clamp(min=1).to(table.dtype).view(-1, 1, 1, 1, 1)

    # Broadcast to (K, pooled_h, grid_h, pooled_w, grid_w).
    def along_y(t):
        return t.view(t.shape[0], pooled_h, max_h, 1, 1)

    def along_x(t):
        return t.view(t.shape[0], 1, 1, pooled_w, max_w)

    image_rows = (rois[:, 0].long() * height * width).view(-1, 1, 1, 1, 1)
    valid = (along_y(y_in) & along_x(x_in)).to(table.dtype) / count
    corners = []
    for yi, wy in ((y_low, 1 - ly), (y_high, ly)):
        for xi, wx in ((x_low, 1 - lx), (x_high, lx)):
            rows = image_rows + along_y(yi) * width + along_x(xi)
            corners.append((rows, along_y(wy) * along_x(wx) * valid))
    samples = _gather_corners(table, corners)
    return samples.sum(dim=(2, 4)).permute(0, 3, 1, 2)


def roi_align(input: Tensor, rois: Tensor, output_size: Tuple[int, int], spatial_scale: float,
              sampling_ratio: int, aligned: bool) -> Tensor:
    """RoIAlign with torchvision's semantics; rois is Tensor[K, 5] (batch index, x1, y1, x2, y2)."""
    batch, channels, height, width = input.shape
    table = input.permute(0, 2, 3, 1).reshape(batch * height * width, channels)
    per_box = channels * output_size[0] * output_size[1] * 4 * max(sampling_ratio, 2) ** 2
    chunk = max(1, _ROI_CHUNK_ELEMENTS // per_box)
    outputs = [
        _roi_align_chunk(table, height, width, rois[i:i + chunk], output_size, spatial_scale,
                         sampling_ratio, aligned)
        for i in range(0, rois.shape[0], chunk)
    ]
    if not outputs:
        return input.new_zeros((0, channels) + tuple(output_size))
    return torch.cat(outputs)


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise IoU of (x1, y1, x2, y2) boxes, areas without the +1 of pixel-inclusive conventions."""
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    top_left = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    return inter / (area1[:, None] + area2[None, :] - inter)


def object_keypoint_similarity(keypoints: Tensor, areas: Tensor, sigmas: Tensor) -> Tensor:
    """Pairwise COCO OKS between poses (N, K, 2+), the area of the second pose of each pair as scale."""
    variances = (2 * sigmas) ** 2
    squared = ((keypoints[:, None, :, :2] - keypoints[None, :, :, :2]) ** 2).sum(-1)
    eps = torch.finfo(torch.float64).eps  # numpy's spacing(1), as in the COCO tools
    e = squared / variances / (areas[None, :, None] + eps) / 2
    return torch.exp(-e).mean(-1)


def _greedy_suppression(overlap: Tensor, order: Tensor, threshold: float) -> Tensor:
    """Keep the best remaining candidate, drop those overlapping it by more than threshold, repeat."""
    suppressed = torch.zeros(order.numel(), dtype=torch.bool, device=order.device)
    overlap = overlap[order][:, order] > threshold
    keep = []
    for i in range(order.numel()):
        if not suppressed[i]:
            keep.append(i)
            suppressed |= overlap[i]
    return order[torch.tensor(keep, dtype=torch.long, device=order.device)]


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS; kept indices by decreasing score, equal scores by increasing index."""
    order = torch.sort(scores, descending=True, stable=True).indices
    return _greedy_suppression(box_iou(boxes, boxes), order, iou_threshold)


def oks_nms(keypoints: Tensor, scores: Tensor, areas: Tensor, sigmas: Tensor, threshold: float) -> Tensor:
    """Greedy NMS on object keypoint similarity; kept indices by decreasing score."""
    order = torch.sort(scores, descending=True, stable=True).indices
    # OKS of candidate j against kept pose i uses pose i's area: transpose the pairwise table.
    overlap = object_keypoint_similarity(keypoints, areas, sigmas).t()
    return _greedy_suppression(overlap, order, threshold)
