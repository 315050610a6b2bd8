"""LCR-Net's two-panel figure (lcrnet.md 7) drawn with matplotlib's Agg backend, and the 3D scene placement used
only for that display (4.8).

Top: the image with each person's 2D skeleton, the person's left limbs green, the right ones (with the hip
and shoulder lines and the torso bones) blue, joints red, the score with one decimal in blue left of and
above the head. Bottom: the same bones in 3D, each person moved to an approximate place in the scene, seen
from the camera (elevation -90, azimuth 90: with the LCR axis flips people stand upright and keep the
image's left/right arrangement). matplotlib is imported when a figure is drawn, not with posekit.
"""
from pathlib import Path
from typing import List, Mapping, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from ..models.lcrnet.codec import HEAD_JOINT, LEFT_LIMBS, RIGHT_LIMBS, TORSO_BONES_17
from ..utils.io import atomic_write

LEFT_COLOUR, RIGHT_COLOUR, JOINT_COLOUR, SCORE_COLOUR = "green", "blue", "red", "blue"
# 17-joint poses print the score at the neck (joint 16), 13-joint ones at the head (lcrnet.md 7).
NECK_JOINT = 16
SCORE_OFFSET_PX = 20.0
SCORE_OFFSET_M = 0.1
FIGURE_INCHES, DPI = (6.4, 9.6), 100
Segment = Tuple[np.ndarray, np.ndarray]


def bones(joints: np.ndarray) -> Tuple[List[Segment], List[Segment]]:
    """(left segments, right segments) of one pose (J, 2 or 3): limbs by side; for 13 joints the two torso bones
    hip midpoint -> shoulder midpoint -> head, for 17 joints the torso chain through joints 13..16 (right)."""
    left = [(joints[a], joints[b]) for a, b in LEFT_LIMBS]
    right = [(joints[a], joints[b]) for a, b in RIGHT_LIMBS]
    if len(joints) > NECK_JOINT:
        right += [(joints[a], joints[b]) for a, b in TORSO_BONES_17]
    else:
        hips, shoulders = joints[[4, 5]].mean(axis=0), joints[[10, 11]].mean(axis=0)
        right += [(hips, shoulders), (shoulders, joints[HEAD_JOINT])]
    return left, right


def score_anchor(joints: np.ndarray) -> np.ndarray:
    """The joint the score is printed next to: the neck for 17 joints, the head otherwise."""
    return joints[NECK_JOINT if len(joints) > NECK_JOINT else HEAD_JOINT]


def default_intrinsics(height: int, width: int) -> np.ndarray:
    """An assumed pinhole camera for an image of that size: focal length max(H, W) pixels, centred principal point."""
    focal = float(max(height, width))
    return np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])


def scene_translation(pose2d: np.ndarray, pose3d: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """The camera-frame translation t (3,) placing a torso-centred LCR pose where it projects onto its 2D joints:
    the linear least squares of fx (x + tx) = (u - cx)(z + tz) and fy (y + ty) = (v - cy)(z + tz) over the
    joints, with camera x, y, z = -X, -Y, Z (lcrnet.md 1.4). Approximate (an algebraic error, an assumed camera):
    for display only, as the release's placement (4.8)."""
    fx, fy, cx, cy = intrinsics[0, 0], intrinsics[1, 1], intrinsics[0, 2], intrinsics[1, 2]
    camera = pose3d * np.array([-1.0, -1.0, 1.0])
    du, dv = pose2d[:, 0] - cx, pose2d[:, 1] - cy
    zeros, ones = np.zeros_like(du), np.ones_like(du)
    rows = np.concatenate([np.stack([fx * ones, zeros, -du], 1), np.stack([zeros, fy * ones, -dv], 1)])
    rhs = np.concatenate([du * camera[:, 2] - fx * camera[:, 0], dv * camera[:, 2] - fy * camera[:, 1]])
    return np.linalg.lstsq(rows, rhs, rcond=None)[0]


def placed_poses(people: Sequence[Mapping], image_size: Tuple[int, int],
                 intrinsics: Optional[np.ndarray] = None) -> List[np.ndarray]:
    """Each person's 3D pose in the LCR frame moved by its scene translation (camera t -> LCR (-tx, -ty, tz))."""
    camera = default_intrinsics(*image_size) if intrinsics is None else intrinsics
    placed = []
    for person in people:
        pose2d, pose3d = np.asarray(person["pose2d"], np.float64), np.asarray(person["pose3d"], np.float64)
        placed.append(pose3d + scene_translation(pose2d, pose3d, camera) * np.array([-1.0, -1.0, 1.0]))
    return placed


def _draw_2d(axes, image: np.ndarray, people: Sequence[Mapping]) -> None:
    axes.imshow(image)
    for person in people:
        pose2d = np.asarray(person["pose2d"], np.float64)
        left, right = bones(pose2d)
        for segments, colour in ((left, LEFT_COLOUR), (right, RIGHT_COLOUR)):
            for a, b in segments:
                axes.plot([a[0], b[0]], [a[1], b[1]], color=colour, linewidth=2)
        axes.plot(pose2d[:, 0], pose2d[:, 1], "o", color=JOINT_COLOUR, markersize=3)
        x, y = score_anchor(pose2d)
        axes.text(x - SCORE_OFFSET_PX, y - SCORE_OFFSET_PX, f"{person['score']:.1f}", color=SCORE_COLOUR)
    axes.set_xticks([])
    axes.set_yticks([])


def _draw_3d(axes, poses: Sequence[np.ndarray], scores: Sequence[float]) -> None:
    for pose3d, score in zip(poses, scores):
        left, right = bones(pose3d)
        for segments, colour in ((left, LEFT_COLOUR), (right, RIGHT_COLOUR)):
            for a, b in segments:
                axes.plot([a[0], b[0]], [a[1], b[1]], [a[2], b[2]], color=colour, linewidth=2)
        axes.scatter(pose3d[:, 0], pose3d[:, 1], pose3d[:, 2], color=JOINT_COLOUR, s=6)
        x, y, z = score_anchor(pose3d)
        axes.text(x + SCORE_OFFSET_M, y + SCORE_OFFSET_M, z, f"{score:.1f}", color=SCORE_COLOUR)
    axes.view_init(elev=-90, azim=90)
    axes.set_box_aspect((1, 1, 1))
    axes.set_xlabel("X axis")
    axes.set_ylabel("Y axis")
    axes.set_zlabel("Z axis")
    for ticks in (axes.set_xticklabels, axes.set_yticklabels, axes.set_zticklabels):
        ticks([])


def draw_pose_figure(image: np.ndarray, people: Sequence[Mapping]) -> np.ndarray:
    """The two-panel figure (module docstring) of an RGB uint8 image and its people ({"score", "pose2d" (J, 2),
    "pose3d" (J, 3)}), as an RGB uint8 array of FIGURE_INCHES x DPI pixels."""
    # The Agg canvas directly: no pyplot, no global backend switch, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGURE_INCHES, dpi=DPI)
    canvas = FigureCanvasAgg(figure)
    _draw_2d(figure.add_subplot(2, 1, 1), image, people)
    poses = placed_poses(people, image.shape[:2])
    _draw_3d(figure.add_subplot(2, 1, 2, projection="3d"), poses, [p["score"] for p in people])
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def write_pose_figure(path: Union[str, Path], image: np.ndarray, people: Sequence[Mapping]) -> Path:
    """Draw the figure and write it as a PNG at ``path`` atomically; returns the path."""
    figure = draw_pose_figure(image, people)
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(figure[..., ::-1]))
    if not ok:
        raise ValueError(f"{path}: the figure could not be encoded as PNG")
    atomic_write(path, lambda tmp: encoded.tofile(tmp))
    return Path(path)
