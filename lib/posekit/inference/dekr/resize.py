"""Test-time input sizing and the affine between image pixels and network-input pixels (dekr.md 7.1, 7.6)."""
from typing import Tuple

import cv2
import numpy as np
import torch

from ...data.transforms import PIXEL_STD

Size = Tuple[int, int]


def _align64(value: float) -> int:
    """Round up to a multiple of 64, as the official sizing does."""
    return int((value + 63) // 64 * 64)


def get_multi_scale_size(height: int, width: int, input_size: int,
                         scale: float) -> Tuple[Size, np.ndarray, np.ndarray]:
    """Network input size (w, h) at ``scale``, image centre (int-rounded) and the official scale pair (units of 200 px)."""
    center = np.array([int(width / 2.0 + 0.5), int(height / 2.0 + 0.5)])
    base = _align64(input_size)  # the official minimum scale is always 1.0
    if width < height:
        w_resized = int(base * scale)
        h_resized = int(_align64(base / width * height) * scale)
        scale_pair = np.array([width / PIXEL_STD, h_resized / w_resized * width / PIXEL_STD])
    else:
        h_resized = int(base * scale)
        w_resized = int(_align64(base / height * width) * scale)
        scale_pair = np.array([w_resized / h_resized * height / PIXEL_STD, height / PIXEL_STD])
    return (w_resized, h_resized), center, scale_pair


def get_affine_transform(center: np.ndarray, scale_pair: np.ndarray, output_size: Size,
                         inverse: bool = False) -> np.ndarray:
    """2x3 affine (no rotation) taking a 200*scale-wide window around ``center`` onto ``output_size``.

    Built from three float32 point pairs and ``cv2.getAffineTransform`` like the official code, so the
    matrix carries the same rounding.
    """
    src_half = scale_pair[0] * PIXEL_STD * 0.5
    dst_half = output_size[0] * 0.5
    dst_center = np.array([output_size[0] * 0.5, output_size[1] * 0.5])
    src = _three_points(np.asarray(center, dtype=np.float64), src_half)
    dst = _three_points(dst_center, dst_half)
    if inverse:
        return cv2.getAffineTransform(dst, src)
    return cv2.getAffineTransform(src, dst)


def _three_points(center: np.ndarray, half_width: float) -> np.ndarray:
    """Centre, the point half a width above it, and the point a quarter turn from that (float32)."""
    points = np.zeros((3, 2), dtype=np.float32)
    points[0] = center
    points[1] = center + np.array([0.0, -half_width])
    direction = points[0] - points[1]
    points[2] = points[1] + np.array([-direction[1], direction[0]], dtype=np.float32)
    return points


def resize_align_multi_scale(image: np.ndarray, input_size: int,
                             scale: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Warp an HxWx3 image to the 64-aligned input size at ``scale`` (bilinear, black border)."""
    size, center, scale_pair = get_multi_scale_size(image.shape[0], image.shape[1], input_size, scale)
    matrix = get_affine_transform(center, scale_pair, size)
    return cv2.warpAffine(image, matrix, size), center, scale_pair


def get_final_preds(poses: torch.Tensor, center: np.ndarray, scale_pair: np.ndarray,
                    base_size: Size) -> torch.Tensor:
    """Map (N, K, >=2) poses from base-input pixels back to image pixels; other columns are kept.

    The affine is applied in float64 (as officially, in NumPy) and rounded back to the poses' dtype.
    """
    matrix = torch.from_numpy(get_affine_transform(center, scale_pair, base_size, inverse=True))
    matrix = matrix.to(poses.device)
    out = poses.clone()
    xy = poses[..., :2].double()
    out[..., :2] = (xy @ matrix[:, :2].T + matrix[:, 2]).to(poses.dtype)
    return out
