"""DEKR training augmentation (dekr.md 6.3): random scale/rotation/translation affine and horizontal flip.

Random draws follow the official order and sources: NumPy for the affine (two uniforms, then two integer
shifts), Python ``random`` for the flip. Both generators are passed in, so a sample depends only on the
generators' seeds and never on global state (what makes DataLoader workers and resumes reproducible).
"""
import logging
import math
import random
from dataclasses import dataclass
from typing import Sequence, Tuple

import cv2
import numpy as np
import torch

from ..utils.errors import ConfigError

# The official code measures scales in units of 200 pixels (inherited from the MPII convention).
PIXEL_STD = 200.0

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AffineDraw:
    """One random draw of the affine: crop centre (image px), crop scale (units of 200 px), rotation (deg)."""

    center: Tuple[float, float]
    scale: float
    rotation: float


def draw_affine(height: int, width: int, min_scale: float, max_scale: float, max_rotation: float,
                max_translate: float, scale_type: str, rng: np.random.RandomState) -> AffineDraw:
    """Draw scale, rotation and translation in the official order from ``rng``."""
    if scale_type == "short":
        scale = min(height, width) / PIXEL_STD
    elif scale_type == "long":
        logger.warning("DATASET.SCALE_TYPE 'long' crops the long side; the official models use 'short'")
        scale = max(height, width) / PIXEL_STD
    else:
        raise ConfigError(f"DATASET.SCALE_TYPE must be 'short' or 'long', got '{scale_type}'")
    scale *= rng.random_sample() * (max_scale - min_scale) + min_scale
    rotation = (rng.random_sample() * 2 - 1) * max_rotation
    center_x, center_y = width / 2, height / 2
    if max_translate > 0:
        # int() truncates toward zero, as NumPy does with the official float bounds.
        bound = (int(-max_translate * scale), int(max_translate * scale))
        center_x += rng.randint(*bound)
        center_y += rng.randint(*bound)
    return AffineDraw((center_x, center_y), scale, rotation)


def affine_matrix(draw: AffineDraw, size: int) -> np.ndarray:
    """3x3 matrix taking image pixels to a ``size`` x ``size`` crop: scale and centre, then rotate about its middle."""
    side = PIXEL_STD * draw.scale
    crop = np.array([[size / side, 0.0, size * (0.5 - draw.center[0] / side)],
                     [0.0, size / side, size * (0.5 - draw.center[1] / side)],
                     [0.0, 0.0, 1.0]])
    angle = math.radians(-draw.rotation)
    sin, cos = math.sin(angle), math.cos(angle)
    rotate = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
    to_middle = np.array([[1.0, 0.0, -size / 2], [0.0, 1.0, -size / 2], [0.0, 0.0, 1.0]])
    from_middle = np.array([[1.0, 0.0, size / 2], [0.0, 1.0, size / 2], [0.0, 0.0, 1.0]])
    return from_middle @ rotate @ to_middle @ crop


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 3x3 affine to the x, y columns of ``points`` (..., >=2); other columns are kept."""
    out = points.copy()
    xy = points[..., :2]
    out[..., :2] = xy @ matrix[:2, :2].T + matrix[:2, 2]
    return out


class RandomAffine:
    """Crop the image to INPUT_SIZE and mask and joints to OUTPUT_SIZE with one random affine (dekr.md 6.3 steps 1-4)."""

    def __init__(self, input_size: int, output_size: int, max_rotation: float, min_scale: float,
                 max_scale: float, scale_type: str, max_translate: float) -> None:
        self.input_size = input_size
        self.output_size = output_size
        self.max_rotation = max_rotation
        self.min_scale = min_scale
        self.max_scale = max_scale
        self.scale_type = scale_type
        self.max_translate = max_translate

    def __call__(self, image: np.ndarray, mask: np.ndarray, joints: np.ndarray, areas: np.ndarray,
                 rng: np.random.RandomState):
        """Return (image, mask, joints, areas) warped by one affine drawn from ``rng``."""
        height, width = image.shape[:2]
        draw = draw_affine(height, width, self.min_scale, self.max_scale, self.max_rotation,
                           self.max_translate, self.scale_type, rng)
        input_matrix = affine_matrix(draw, self.input_size)
        output_matrix = affine_matrix(draw, self.output_size)
        image = cv2.warpAffine(image, input_matrix[:2], (self.input_size, self.input_size),
                               flags=cv2.INTER_LINEAR)
        # Outside the image the warped mask is 0: those pixels do not count in the heatmap loss (official).
        mask = cv2.warpAffine((mask * 255).astype(np.uint8), output_matrix[:2],
                              (self.output_size, self.output_size)) / 255 > 0.5
        joints = transform_points(joints, output_matrix)
        areas = areas * (self.input_size / (PIXEL_STD * draw.scale)) ** 2
        return image, mask, joints, areas


class RandomHorizontalFlip:
    """Mirror image, mask and joints with probability ``prob`` (dekr.md 6.3 step 5, official x -> R - 1 - x)."""

    def __init__(self, flip_index_with_center: Sequence[int], output_size: int, prob: float) -> None:
        self.flip_index = list(flip_index_with_center)
        self.output_size = output_size
        self.prob = prob

    def __call__(self, image: np.ndarray, mask: np.ndarray, joints: np.ndarray, py_rng: random.Random):
        """Return (image, mask, joints), flipped when ``py_rng.random() < prob``."""
        if py_rng.random() >= self.prob:
            return image, mask, joints
        joints = joints[:, self.flip_index].copy()
        # Official convention (HigherHRNet): R - 1 - x, 0.75 output px off the exact image mirror R - 0.25 - x.
        joints[..., 0] = self.output_size - 1 - joints[..., 0]
        return np.ascontiguousarray(image[:, ::-1]), np.ascontiguousarray(mask[:, ::-1]), joints


def to_chw_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWxC uint8 image -> CxHxW uint8 tensor (the networks normalise their own inputs)."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
