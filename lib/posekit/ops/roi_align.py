"""RoIAlign (Mask R-CNN's bilinear region pooling) with torchvision's interface and semantics."""
from typing import List, Tuple, Union

import torch
from torch import Tensor, nn

from posekit.ops import _library
from posekit.ops._checks import IntPair, autocast_enabled, check_floating, check_same, check_tensor, pair, to_float32

Boxes = Union[Tensor, List[Tensor], Tuple[Tensor, ...]]


def boxes_to_rois(boxes: Boxes) -> Tensor:
    """Turn a list of per-image Tensor[L, 4] boxes into Tensor[K, 5] rows (batch index, x1, y1, x2, y2)."""
    for i, per_image in enumerate(boxes):
        check_tensor(per_image, f"boxes[{i}]", "[L, 4]", 2)
        if per_image.shape[1] != 4:
            raise ValueError(f"boxes[{i}] must have shape [L, 4], got {tuple(per_image.shape)}")
        check_same(boxes[0], "boxes[0]", per_image, f"boxes[{i}]")
    indices = [torch.full_like(b[:, :1], i) for i, b in enumerate(boxes)]
    return torch.cat([torch.cat(indices), torch.cat(list(boxes))], dim=1)


def _check_rois(input: Tensor, rois: Tensor) -> None:
    check_tensor(rois, "boxes", "[K, 5]", 2)
    if rois.shape[1] != 5:
        raise ValueError(f"boxes must have shape [K, 5] (batch index, x1, y1, x2, y2), got {tuple(rois.shape)}")
    check_same(input, "input", rois, "boxes")
    # A data-dependent check: skipped while tracing, where it would break the graph.
    if rois.numel() and not torch.compiler.is_compiling():
        index = rois[:, 0]
        if bool(((index < 0) | (index >= input.shape[0]) | (index != index.floor())).any()):
            raise ValueError(f"boxes[:, 0] must hold integer batch indices in [0, {input.shape[0]})")


def roi_align(input: Tensor, boxes: Boxes, output_size: IntPair, spatial_scale: float = 1.0,
              sampling_ratio: int = -1, aligned: bool = False) -> Tensor:
    """Pool each box of ``input`` (N, C, H, W) to ``output_size`` by averaging bilinear samples.

    Boxes are in input-image coordinates, scaled by ``spatial_scale``; ``aligned`` shifts them by -0.5
    pixel; ``sampling_ratio`` <= 0 takes ceil(box size / output size) samples per bin on each axis.
    """
    check_tensor(input, "input", "[batch, channels, H, W]", 4)
    if autocast_enabled(input):
        # As torchvision's autocast kernel: pool in float32, return the input's dtype.
        with torch.autocast(input.device.type, enabled=False):
            boxes = to_float32(*boxes) if isinstance(boxes, (list, tuple)) else to_float32(boxes)[0]
            pooled = roi_align(to_float32(input)[0], boxes, output_size, spatial_scale, sampling_ratio, aligned)
            return pooled.to(input.dtype)
    check_floating(input, "input")
    if isinstance(boxes, (list, tuple)):
        if len(boxes) != input.shape[0]:
            raise ValueError(f"boxes must be a list of {input.shape[0]} Tensor[L, 4] (one per image), "
                             f"got {len(boxes)}")
        rois = boxes_to_rois(boxes) if boxes else input.new_zeros((0, 5))
    else:
        rois = boxes
    _check_rois(input, rois)
    pooled = pair(output_size, "output_size", 1)
    if not isinstance(sampling_ratio, int):
        raise TypeError(f"sampling_ratio must be an int, got {sampling_ratio!r}")
    if rois.shape[0] == 0:
        return input.new_zeros((0, input.shape[1]) + pooled)
    return _library.roi_align(input, rois, float(spatial_scale), pooled, sampling_ratio, bool(aligned))


class RoIAlign(nn.Module):
    """Module form of :func:`roi_align`."""

    def __init__(self, output_size: IntPair, spatial_scale: float, sampling_ratio: int, aligned: bool = False):
        super().__init__()
        self.output_size = pair(output_size, "output_size", 1)
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned

    def forward(self, input: Tensor, rois: Boxes) -> Tensor:
        """Pool ``rois`` (Tensor[K, 5] or list of Tensor[L, 4]) from ``input``."""
        return roi_align(input, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned)

    def extra_repr(self) -> str:
        return (f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
                f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}")
