"""Skeleton drawing: limbs in per-limb colours, joints as filled circles, low-confidence joints hidden."""
import colorsys
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..data.metadata import KeypointSet

Colour = Tuple[int, int, int]
Pair = Tuple[int, int]


def limb_colours(count: int) -> List[Colour]:
    """``count`` distinct saturated colours spread around the hue circle, as (B, G, R) uint8 triples."""
    colours = []
    for index in range(count):
        red, green, blue = colorsys.hsv_to_rgb(index / max(count, 1), 1.0, 1.0)
        colours.append((round(blue * 255), round(green * 255), round(red * 255)))
    return colours


def joint_colours(num_joints: int, skeleton: Sequence[Pair], limbs: Optional[Sequence[Colour]] = None) -> List[Colour]:
    """Each joint takes the colour of the first limb that starts or ends at it (white when on no limb)."""
    colours: List[Colour] = [(255, 255, 255)] * num_joints
    assigned = [False] * num_joints
    for (a, b), colour in zip(skeleton, limbs or limb_colours(len(skeleton))):
        for joint in (a, b):
            if not assigned[joint]:
                colours[joint], assigned[joint] = colour, True
    return colours


def draw_skeleton(image: np.ndarray, keypoints: np.ndarray, skeleton: Sequence[Pair], threshold: float = 0.0,
                  joint_radius: int = 4, limb_thickness: int = 2,
                  limbs: Optional[Sequence[Colour]] = None) -> np.ndarray:
    """Draw one pose (K, 3: x, y, score) on ``image`` in place; joints scoring below ``threshold`` are hidden.

    Limbs are drawn first (in ``limbs``' B, G, R colours, default ``limb_colours``) so every visible joint's
    centre pixel keeps its joint colour.
    """
    limbs = list(limbs or limb_colours(len(skeleton)))
    visible = keypoints[:, 2] >= threshold
    points = [(int(round(x)), int(round(y))) for x, y in keypoints[:, :2]]
    for (a, b), colour in zip(skeleton, limbs):
        if visible[a] and visible[b]:
            cv2.line(image, points[a], points[b], colour, limb_thickness, cv2.LINE_AA)
    for joint, colour in enumerate(joint_colours(len(keypoints), skeleton, limbs)):
        if visible[joint]:
            cv2.circle(image, points[joint], joint_radius, colour, thickness=-1)
    return image


def draw_poses(image: np.ndarray, poses: Sequence[np.ndarray], keypoint_set: KeypointSet,
               threshold: float = 0.0) -> np.ndarray:
    """A copy of a (B, G, R) ``image`` with every pose (K, 3) drawn using ``keypoint_set``'s skeleton (and its
    R, G, B limb colours when it has them)."""
    canvas = image.copy()
    limbs = [(blue, green, red) for red, green, blue in keypoint_set.limb_colours]
    for keypoints in poses:
        draw_skeleton(canvas, np.asarray(keypoints), keypoint_set.skeleton, threshold, limbs=limbs)
    return canvas
