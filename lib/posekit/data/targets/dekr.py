"""DEKR training targets (dekr.md 6.2, 6.4, 6.5): loss mask, keypoint/centre heatmaps and pixel-wise offsets.

Joints arrays have shape (P, K+1, 3): rows 0..K-1 are the keypoints (x, y, v), row K the person centre.
Three official defects are fixed (docs/differences.md, "Training targets"); everything else (window
bounds, the 8x8 asymmetric offset square, the skip rule, BG_WEIGHT, the shared area map) is as official.
"""
import warnings
from typing import Iterable, Tuple

import numpy as np
from pycocotools import mask as mask_utils

from ...utils.errors import DataError

# Persons whose labelled joints span less than a 32-px diagonal are weighted as if they spanned 32 px,
# so one labelled joint (zero extent) cannot get an infinite offset weight 1/sqrt(area).
MIN_PERSON_AREA = 32.0 ** 2
# COCO: persons whose segment area is below this get no centre (official).
SMALL_PERSON_SEGMENT_AREA = 32.0 ** 2


def segmentation_pixels(segmentation, height: int, width: int, where: str) -> np.ndarray:
    """Count per pixel how many of the segmentation's parts (polygons or one RLE) cover it."""
    if isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), str):
        rles = [{"size": segmentation["size"], "counts": segmentation["counts"].encode()}]
    elif isinstance(segmentation, (list, dict)):
        if not segmentation:
            return np.zeros((height, width), np.float64)
        try:
            rles = mask_utils.frPyObjects(segmentation, height, width)
        except Exception as err:
            raise DataError(f"{where}: field 'segmentation' is not a polygon list or RLE ({err})") from err
    else:
        raise DataError(f"{where}: field 'segmentation' must be a polygon list or an RLE dict")
    with warnings.catch_warnings():
        # pycocotools' decode triggers a NumPy 2 copy-keyword DeprecationWarning on every call.
        warnings.simplefilter("ignore", DeprecationWarning)
        decoded = mask_utils.decode(rles if isinstance(rles, list) else [rles])
    return decoded.reshape(height, width, -1).sum(axis=2, dtype=np.float64)


def loss_mask(annotations: Iterable[dict], height: int, width: int, where: str) -> np.ndarray:
    """Valid-pixel mask (H, W) bool: False under crowd regions and under persons without labelled joints."""
    covered = np.zeros((height, width), np.float64)
    for ann in annotations:
        if ann["iscrowd"] or ann["num_keypoints"] == 0:
            covered += segmentation_pixels(ann["segmentation"], height, width, f"{where} annotation {ann.get('id')}")
    return covered < 0.5


def labelled_extent_areas(keypoints: np.ndarray) -> np.ndarray:
    """Per person, the squared diagonal of its labelled joints' bounding box (floored at MIN_PERSON_AREA).

    Fix: the official code took max_x^2 + max_y^2 over all rows including unlabelled (0, 0) ones.
    """
    areas = np.full(len(keypoints), MIN_PERSON_AREA)
    for person, joints in enumerate(keypoints):
        labelled = joints[joints[:, 2] > 0, :2]
        if len(labelled):
            extent = labelled.max(axis=0) - labelled.min(axis=0)
            areas[person] = max(float(extent @ extent), MIN_PERSON_AREA)
    return areas


def person_centres(keypoints: np.ndarray, centre_allowed: np.ndarray) -> np.ndarray:
    """(P, 3) centre rows: mean of the labelled joints, v = 1; v = 0 when not allowed or nothing is labelled.

    Fix: the official code gave persons without labelled joints a centre at the image origin.
    """
    centres = np.zeros((len(keypoints), 3))
    for person, joints in enumerate(keypoints):
        labelled = joints[:, 2] > 0
        if centre_allowed[person] and labelled.any():
            centres[person, :2] = joints[labelled, :2].mean(axis=0)
            centres[person, 2] = 1
    return centres


def _gaussian_window(x: float, y: float, sigma: float, size: int) -> Tuple[slice, slice, np.ndarray]:
    """Rows, columns and unnormalised Gaussian values of the official window around (x, y), clipped to the map."""
    x0, x1 = max(int(np.floor(x - 3 * sigma - 1)), 0), min(int(np.ceil(x + 3 * sigma + 2)), size)
    y0, y1 = max(int(np.floor(y - 3 * sigma - 1)), 0), min(int(np.ceil(y + 3 * sigma + 2)), size)
    xs = np.arange(x0, x1) - x
    ys = np.arange(y0, y1) - y
    values = np.exp(-(ys[:, None] ** 2 + xs[None, :] ** 2) / (2 * sigma ** 2))
    return slice(y0, y1), slice(x0, x1), values


def heatmap_targets(joints: np.ndarray, size: int, sigma: float, center_sigma: float,
                    bg_weight: float) -> Tuple[np.ndarray, np.ndarray]:
    """(K+1, R, R) heatmaps (element-wise max of Gaussians) and weights (1 in written windows, else bg_weight).

    Fix: the centre channel uses ``center_sigma`` and keypoint channels ``sigma`` for any K (official: by
    index < 17).
    """
    channels = joints.shape[1]
    heatmaps = np.zeros((channels, size, size), np.float32)
    weights = np.full((channels, size, size), bg_weight, np.float32)
    for person in joints:
        for channel, (x, y, v) in enumerate(person):
            if v <= 0 or not (0 <= x < size and 0 <= y < size):
                continue
            rows, cols, values = _gaussian_window(x, y, center_sigma if channel == channels - 1 else sigma, size)
            np.maximum(heatmaps[channel, rows, cols], values, out=heatmaps[channel, rows, cols])
            weights[channel, rows, cols] = 1
    return heatmaps, weights


def offset_targets(joints: np.ndarray, areas: np.ndarray, size: int,
                   radius: int) -> Tuple[np.ndarray, np.ndarray]:
    """(2K, R, R) offsets (pixel - joint, x then y per joint) and weights 1/sqrt(area) around each centre.

    Persons are written in order; a pixel already holding a non-zero offset for that joint keeps it when
    the area map there (shared by all joints) is smaller than this person's area.
    """
    num_joints = joints.shape[1] - 1
    offsets = np.zeros((2 * num_joints, size, size), np.float32)
    weights = np.zeros((2 * num_joints, size, size), np.float32)
    area_map = np.zeros((size, size), np.float32)
    for person, area in zip(joints, areas):
        # int() truncates toward zero as the official code does: a centre at x = -0.5 counts as column 0.
        centre_x, centre_y, centre_v = int(person[-1, 0]), int(person[-1, 1]), person[-1, 2]
        if centre_v < 1 or not (0 <= centre_x < size and 0 <= centre_y < size):
            continue
        rows = slice(max(centre_y - radius, 0), min(centre_y + radius, size))
        cols = slice(max(centre_x - radius, 0), min(centre_x + radius, size))
        grid_y, grid_x = np.mgrid[rows, cols]
        for joint, (x, y, v) in enumerate(person[:-1]):
            if v <= 0 or not (0 <= x < size and 0 <= y < size):
                continue
            pair = slice(2 * joint, 2 * joint + 2)
            taken = (offsets[pair, rows, cols] != 0).any(axis=0) & (area_map[rows, cols] < area)
            write = ~taken
            offsets[2 * joint, rows, cols][write] = (grid_x - x)[write]
            offsets[2 * joint + 1, rows, cols][write] = (grid_y - y)[write]
            weights[pair, rows, cols][:, write] = 1 / np.sqrt(area)
            area_map[rows, cols][write] = area
    return offsets, weights
