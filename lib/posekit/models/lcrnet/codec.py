"""LCR-Net's pose vectors: the joint sets, the 5J layout, box normalisation, class assignment, target
encoding, decoding and the horizontal flip (lcrnet.md 1, 2.3, 3.7, 3.8, 9).

This is the only module that knows the 5J layout. A pose is a flat vector of 5J numbers, coordinate-major
(lcrnet.md 1.2): ``[x_0..x_{J-1}, y_0..y_{J-1}, X_0..X_{J-1}, Y_0..Y_{J-1}, Z_0..Z_{J-1}]``; 2D in pixels
(or in box units once normalised), 3D in metres, torso-centred, in the LCR frame (X toward the image's left,
Y up, Z away from the camera). Functions take and return torch tensors; ``decode_poses`` also takes NumPy
arrays and then returns NumPy arrays. Computations keep the input dtype (float64 in, float64 out).
"""
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from ...data.metadata import KeypointSet, get_keypoint_set, register_keypoint_set
from ...utils.errors import ConfigError, DataError

ArrayLike = Union[Tensor, np.ndarray]
COORDINATES = 5  # x, y (2D) then X, Y, Z (3D)

# Index groups of lcrnet.md 1.1 (13- and 17-joint sets share indices 0..12).
LOWER_BODY_JOINTS = (0, 1, 2, 3)
TORSO_JOINTS = (4, 5, 10, 11)
TORSO_HEAD_JOINTS = (4, 5, 10, 11, 12)
SHOULDERS_HEAD_JOINTS = (10, 11, 12)
HEAD_JOINT = 12
# The release's drawing (lcrnet.md 7): the person's left limbs green, the right ones (and hip and shoulder
# lines) blue. 13 joints add two bones between midpoints (hips -> shoulders -> head) that are no joint pair.
LEFT_LIMBS = ((9, 11), (7, 9), (1, 3), (3, 5))
RIGHT_LIMBS = ((0, 2), (2, 4), (8, 10), (6, 8), (4, 5), (10, 11))
TORSO_BONES_17 = ((4, 13), (5, 13), (13, 14), (14, 15), (15, 16), (12, 16), (10, 15), (11, 15))

_NAMES_13 = ("right_ankle", "left_ankle", "right_knee", "left_knee", "right_hip", "left_hip", "right_wrist",
             "left_wrist", "right_elbow", "left_elbow", "right_shoulder", "left_shoulder", "head")
# The person's left/right joint pairs (lcrnet.md 1.1; the 17-joint extras are central).
FLIP_PAIRS = ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11))
# No OKS is defined for these sets; KeypointSet needs sigmas, so each joint takes its COCO counterpart's
# (LCR joint i <- COCO joint 16 - i, head <- nose, lcrnet.md 1.1) and the 17-joint torso points the hips'
# or shoulders'.
_SIGMAS_13 = (0.089, 0.089, 0.087, 0.087, 0.107, 0.107, 0.062, 0.062, 0.072, 0.072, 0.079, 0.079, 0.026)

LCR_13 = KeypointSet(name="lcrnet_13", joint_names=_NAMES_13, flip_pairs=FLIP_PAIRS, sigmas=_SIGMAS_13,
                     skeleton=LEFT_LIMBS + RIGHT_LIMBS)
LCR_17 = KeypointSet(name="lcrnet_17", joint_names=_NAMES_13 + ("pelvis", "spine", "thorax", "neck"),
                     flip_pairs=FLIP_PAIRS, sigmas=_SIGMAS_13 + (0.107, 0.107, 0.079, 0.079),
                     skeleton=LEFT_LIMBS + RIGHT_LIMBS + TORSO_BONES_17)
for _set in (LCR_13, LCR_17):
    register_keypoint_set(_set)


def joint_set(num_joints: int) -> KeypointSet:
    """The LCR-Net keypoint set with ``num_joints`` joints (13 or 17)."""
    if num_joints not in (13, 17):
        raise ConfigError(f"LCR-Net joint sets have 13 or 17 joints, got {num_joints}")
    return get_keypoint_set(f"lcrnet_{num_joints}")


def num_joints_of(pose_size: int, where: str = "pose") -> int:
    """J for a 5J-vector of ``pose_size`` numbers; DataError naming ``where`` when it is not a multiple of 5."""
    if pose_size <= 0 or pose_size % COORDINATES:
        raise DataError(f"{where}: a pose must hold 5J numbers (x, y, X, Y, Z per joint), got {pose_size}")
    return pose_size // COORDINATES


def split_poses(poses: Tensor) -> Tuple[Tensor, Tensor]:
    """(..., 5J) vectors -> 2D (..., J, 2) and 3D (..., J, 3)."""
    per_coordinate = poses.reshape(*poses.shape[:-1], COORDINATES, num_joints_of(poses.shape[-1]))
    joints = per_coordinate.transpose(-1, -2)
    return joints[..., :2], joints[..., 2:]


def join_poses(pose2d: Tensor, pose3d: Tensor) -> Tensor:
    """2D (..., J, 2) and 3D (..., J, 3) -> (..., 5J) vectors (the inverse of ``split_poses``)."""
    joints = torch.cat([pose2d, pose3d], dim=-1)
    # The width spelled out: reshape cannot infer a -1 next to a zero-sized dimension (no rows).
    return joints.transpose(-1, -2).reshape(*joints.shape[:-2], joints.shape[-2] * joints.shape[-1])


def _box_origin_and_sides(boxes: Tensor) -> Tuple[Tensor, Tensor]:
    """(N, 1, 2) corner (x1, y1) and sides (w, h) with w = x2 - x1, no "+1" (lcrnet.md 1.3)."""
    return boxes[:, None, :2], (boxes[:, 2:] - boxes[:, :2])[:, None, :]


def normalize_poses(poses: Tensor, boxes: Tensor) -> Tensor:
    """(N, 5J) poses in pixels -> 2D in units of each pose's box (N, 4) x1, y1, x2, y2; 3D unchanged."""
    pose2d, pose3d = split_poses(poses)
    origin, sides = _box_origin_and_sides(boxes.to(poses.dtype))
    return join_poses((pose2d - origin) / sides, pose3d)


def _check_anchor_width(poses: Tensor, anchor_poses: Tensor) -> None:
    if poses.shape[-1] != anchor_poses.shape[-1]:
        raise ConfigError(f"poses have {poses.shape[-1]} numbers but the anchor poses {anchor_poses.shape[-1]}; "
                          f"both must be 5J vectors of one joint set")


def assign_classes(poses: Tensor, boxes: Tensor, anchor_poses: Tensor) -> Tensor:
    """Labels 1..K (int64, (N,)) of the anchors nearest to each pose normalised in its box (lcrnet.md 2.3).

    ``poses`` (N, 5J) in pixels, ``boxes`` (N, 4) the RoIs (or GT boxes), ``anchor_poses`` (K, 5J).
    Distance: plain Euclidean over all 5J numbers (box units and metres mixed); ties go to the lower class.
    """
    _check_anchor_width(poses, anchor_poses)
    normalized = normalize_poses(poses, boxes)
    distances = torch.cdist(normalized[None], anchor_poses.to(normalized.dtype)[None])[0]
    return distances.argmin(dim=1) + 1


def encode_targets(poses: Tensor, boxes: Tensor, classes: Tensor, anchor_poses: Tensor) -> Tensor:
    """Regression targets (N, 5J): each pose normalised in its RoI minus the anchor of its class 1..K (3.7)."""
    _check_anchor_width(poses, anchor_poses)
    return normalize_poses(poses, boxes) - anchor_poses.to(poses.dtype)[classes - 1]


def decode_poses(boxes: ArrayLike, pose_deltas: ArrayLike, anchor_poses: ArrayLike) -> Tuple[ArrayLike, ArrayLike]:
    """Every class's pose in every box (lcrnet.md 3.8): pose2d (R, K, J, 2) pixels, pose3d (R, K, J, 3) metres.

    ``boxes`` (R, 4) x1, y1, x2, y2 in pixels; ``pose_deltas`` (R, 5J(K+1)) the network's pose output already
    divided by 5, class slot k at [5Jk, 5J(k+1)) and slot 0 (background) ignored; ``anchor_poses`` (K, 5J).
    x = x1 + (anchor_x + delta_x) w, y = y1 + (anchor_y + delta_y) h with w = x2 - x1, h = y2 - y1;
    X, Y, Z = anchor + delta. Computed in ``pose_deltas``' dtype; NumPy inputs give NumPy outputs.
    """
    as_numpy = isinstance(pose_deltas, np.ndarray)
    deltas = torch.as_tensor(pose_deltas)
    anchors = torch.as_tensor(anchor_poses).to(deltas.dtype)
    num_classes, width = anchors.shape
    if deltas.shape[1] != width * (num_classes + 1):
        raise ConfigError(f"pose_deltas have {deltas.shape[1]} columns; {num_classes} anchors of {width} numbers "
                          f"need {width * (num_classes + 1)} (background slot included)")
    delta2d, delta3d = split_poses(deltas.reshape(-1, num_classes + 1, width)[:, 1:])
    anchor2d, anchor3d = split_poses(anchors)
    # As the release: box sides in the boxes' own dtype, then corner + anchor * side + side * delta, in this
    # order, so float results match it.
    origin, sides = (part.to(deltas.dtype) for part in _box_origin_and_sides(torch.as_tensor(boxes)))
    pose2d = origin[:, None] + anchor2d * sides[:, None] + sides[:, None] * delta2d
    pose3d = anchor3d + delta3d
    if as_numpy:
        return pose2d.numpy(), pose3d.numpy()
    return pose2d, pose3d


def flip_poses(poses: Tensor, image_width: float, flip_index: Optional[Sequence[int]] = None,
               legacy_plus_one: bool = False) -> Tensor:
    """(N, 5J) pixel poses mirrored left-right in an image ``image_width`` wide (lcrnet.md 9).

    x -> W - x (detectron2's continuous boxes; W - 1 - x with ``legacy_plus_one``, Detectron's pixel
    indices: use the same convention as the boxes), X -> -X, and the person's left and right joints swap
    (``flip_index``, default the LCR joint set of that J). The torso centre is symmetric, so 3D stays centred.
    """
    pose2d, pose3d = split_poses(poses)
    if flip_index is None:
        flip_index = joint_set(pose2d.shape[-2]).flip_index
    far_edge = image_width - 1 if legacy_plus_one else image_width
    mirror = pose2d.new_tensor([-1.0, 1.0]), pose3d.new_tensor([-1.0, 1.0, 1.0])
    flipped2d = pose2d[..., list(flip_index), :] * mirror[0]
    flipped2d[..., 0] += far_edge
    return join_poses(flipped2d, pose3d[..., list(flip_index), :] * mirror[1])
