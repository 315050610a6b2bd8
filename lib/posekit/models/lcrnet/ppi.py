"""Pose proposals integration (lcrnet.md 3.8, 4): from every (RoI, class) pose to one pose per person.

One algorithm covers the release's PPI (``lcr_net_ppi.py``) and NAVER's improved one
(``lcr_net_ppi_improved.py``); their differences are arguments:

* ``grouping_boxes``: "pose" groups with boxes around the proposals' 2D joints (torso + head joints for
  ``bbox_torsohead``) clipped to the image, as the release; "roi" with the RPN boxes, as NAVER.
* ``min_proposals``: 500 is the release's "keep at least min(500, R*K - 1) proposals"; NAVER keeps only
  those over the threshold (0).
* ``num_full_body_classes``: classes (1-based) above it are upper-body anchors whose legs get
  ``upper_body_weight``. K_full is the correct value (4.4). The release's demos passed K (all anchors), which
  disables the down-weighting; NAVER compared 0-based classes with "> K", i.e. 1-based classes > K + 1:
  pass K or K_full + 1 to reproduce them.
* The ``...LR`` closeness swaps left and right joints of the candidate consistently (both coordinates, as
  NAVER; the release swapped x on one pose and y on the other, a defect not reproduced).

posekit's default (RoI grouping, no minimum count, K_full from the anchors) is argued in docs/differences.md.
Inputs may be NumPy arrays or torch tensors; the outputs are of the scores' kind, in the poses' dtype.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from ...utils.errors import ConfigError
from .codec import FLIP_PAIRS, LOWER_BODY_JOINTS, SHOULDERS_HEAD_JOINTS, TORSO_HEAD_JOINTS, TORSO_JOINTS

ArrayLike = Union[Tensor, np.ndarray]
# Closeness by mean 2D joint distance over these joints, relative to twice the longer side of p*'s box.
DISTANCE_JOINTS = {"torso": TORSO_JOINTS, "torsohead": TORSO_HEAD_JOINTS, "head": (12,),
                   "shoulderhead": SHOULDERS_HEAD_JOINTS}
IOU_FUNCS = ("bbox", "bbox_torsohead", "mje") + tuple(DISTANCE_JOINTS) + \
    tuple(name + "LR" for name in DISTANCE_JOINTS if name != "head")
_MIRROR = dict(FLIP_PAIRS + tuple((right, left) for left, right in FLIP_PAIRS))


def select_proposals(scores: ArrayLike, score_threshold: Optional[float] = None,
                     min_proposals: int = 0) -> Tuple[ArrayLike, ArrayLike, ArrayLike, Any]:
    """The (RoI, class) pairs kept as pose proposals (lcrnet.md 3.8): roi_index (N,), class_index (N,) 0-based,
    score (N,) and the threshold used, in row-major (RoI, then class) order.

    ``scores`` (R, K+1) softmax output with column 0 the background. A pair is kept when its score is >= the
    threshold, ``score_threshold`` or by default 0.1 / K, compared in the scores' dtype. When fewer than
    N_min = min(``min_proposals``, R*K - 1) scores are > the threshold, it drops to the N_min-th largest score
    (the release's rule with 500, its "> when counting, >= when selecting" included).
    """
    as_numpy = isinstance(scores, np.ndarray)
    foreground = torch.as_tensor(scores)[:, 1:]
    threshold = torch.tensor(0.1 / foreground.shape[1] if score_threshold is None else score_threshold,
                             dtype=foreground.dtype)
    needed = min(min_proposals, foreground.numel() - 1)
    if needed > 0 and int((foreground > threshold).sum()) < needed:
        threshold = foreground.flatten().sort(descending=True).values[needed - 1]
    roi_index, class_index = torch.nonzero(foreground >= threshold, as_tuple=True)
    selected = foreground[roi_index, class_index]
    if as_numpy:
        return roi_index.numpy(), class_index.numpy(), selected.numpy(), threshold.numpy()[()]
    return roi_index, class_index, selected, threshold


def _pose_boxes(pose2d: np.ndarray, iou_func: str, image_size: Tuple[int, int]) -> np.ndarray:
    """The release's grouping boxes: bounds of the 2D joints (torso + head for bbox_torsohead), each corner
    clipped to [0, W - 1] x [0, H - 1]."""
    joints = pose2d[:, list(TORSO_HEAD_JOINTS)] if iou_func == "bbox_torsohead" else pose2d
    height, width = image_size
    high = np.array([width - 1, height - 1], pose2d.dtype)
    low = np.minimum(np.maximum(joints.min(axis=1), 0), high)
    top = np.minimum(np.maximum(joints.max(axis=1), 0), high)
    return np.concatenate([low, top], axis=1)


def _mean_distance(poses: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Mean over joints of the Euclidean distance of each pose (N, J, D) to ``reference`` (J, D)."""
    return np.sqrt(((poses - reference) ** 2).sum(axis=2)).mean(axis=1)


def _plus_one_iou(boxes: np.ndarray, box: np.ndarray) -> np.ndarray:
    """IoU of each of ``boxes`` (N, 4) with ``box`` (4,) with Detectron's "+1" sides, as both official versions
    (``structures.boxes.pairwise_iou`` with legacy_plus_one; in NumPy, one box against many: the greedy grouping
    calls it once per group, where torch's per-call overhead was most of the PPI's time)."""
    sides = np.minimum(boxes[:, 2:], box[2:]) - np.maximum(boxes[:, :2], box[:2]) + 1
    inter = np.clip(sides, 0, None).prod(axis=1)
    union = (boxes[:, 2:] - boxes[:, :2] + 1).prod(axis=1) + (box[2:] - box[:2] + 1).prod() - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=inter > 0)


def _close_to(best: int, candidates: np.ndarray, boxes: np.ndarray, pose2d: np.ndarray, iou_func: str,
              th_iou: float) -> np.ndarray:
    """Mask over ``candidates`` of the proposals grouped with proposal ``best`` (lcrnet.md 4.2)."""
    if iou_func in ("bbox", "bbox_torsohead"):
        return _plus_one_iou(boxes[candidates], boxes[best]) > th_iou
    name = iou_func[:-2] if iou_func.endswith("LR") else iou_func
    joints = list(range(pose2d.shape[1])) if name == "mje" else list(DISTANCE_JOINTS[name])
    reference = pose2d[best, joints]
    distance = _mean_distance(pose2d[candidates][:, joints], reference)
    if iou_func.endswith("LR"):
        # Consistent swap: the candidate's left and right joints exchange both coordinates.
        mirrored = [_MIRROR.get(joint, joint) for joint in joints]
        distance = np.minimum(distance, _mean_distance(pose2d[candidates][:, mirrored], reference))
    longer_side = (boxes[best, 2:] - boxes[best, :2] + 1).max()
    return distance / (2 * longer_side) < th_iou


def _group(scores: np.ndarray, boxes: np.ndarray, pose2d: np.ndarray, iou_func: str,
           th_iou: float) -> List[np.ndarray]:
    """Greedy grouping: the best remaining proposal takes every remaining one close to it (itself included)."""
    remaining = np.arange(len(scores))
    groups = []
    while len(remaining):
        best = int(remaining[scores[remaining].argmax()])
        close = _close_to(best, remaining, boxes, pose2d, iou_func, th_iou) | (remaining == best)
        groups.append(remaining[close])
        remaining = remaining[~close]
    return groups


def _modes(group: np.ndarray, scores: np.ndarray, pose2d: np.ndarray, pose3d: np.ndarray,
           upper_body: np.ndarray, th_pose3d: float, min_mode_score: float,
           upper_body_weight: float) -> List[Dict[str, Any]]:
    """The modes of one group (lcrnet.md 4.1 step 3): score-weighted means of the group's proposals within
    ``th_pose3d`` (mean 3D joint distance) of the best one not yet used."""
    group_scores, group3d = scores[group], pose3d[group]
    joints = np.concatenate([pose2d[group], group3d], axis=2)
    # Upper-body anchors frame half a person: their legs are guesses, worth ``upper_body_weight``.
    leg_factor = np.where(upper_body[group], upper_body_weight, 1.0).astype(group_scores.dtype)
    lower = list(LOWER_BODY_JOINTS)
    unused = group_scores.copy()
    modes: List[Dict[str, Any]] = []
    while True:
        best = int(unused.argmax())
        if unused[best] < 0 or (group_scores[best] < min_mode_score and modes):
            break
        members = np.flatnonzero(_mean_distance(group3d, group3d[best]) < th_pose3d)
        score = group_scores[members].sum()
        # Scores that are all 0 (kept when min_proposals lowers the threshold to 0) weigh the members alike:
        # the release divides 0 by 0 (a NaN pose); either way the mode scores 0 and is never a person.
        weights = group_scores[members] if score > 0 else np.ones(len(members), group_scores.dtype)
        mean = np.tensordot(weights, joints[members], axes=1) / weights.sum()
        leg_weights = weights * leg_factor[members]
        mean[lower] = np.tensordot(leg_weights, joints[members][:, lower], axes=1) / leg_weights.sum()
        modes.append({"members": group[members], "score": score, "pose2d": mean[:, :2],
                      "pose3d": mean[:, 2:]})
        # Used proposals leave the race for the next mode centre (scores are >= 0, so -1 marks them).
        unused[members] = -1
        unused[best] = -1
    return modes


def _check_arguments(iou_func: str, grouping_boxes: str, th_pose3d: float, upper_body_weight: float) -> None:
    if iou_func not in IOU_FUNCS:
        raise ConfigError(f"PPI iou_func '{iou_func}' is unknown; expected one of {', '.join(IOU_FUNCS)}")
    if grouping_boxes not in ("roi", "pose"):
        raise ConfigError(f"PPI grouping_boxes must be 'roi' (NAVER) or 'pose' (the release), got '{grouping_boxes}'")
    if not th_pose3d > 0 or not upper_body_weight > 0:
        raise ConfigError(f"PPI th_pose3d and upper_body_weight must be > 0, got {th_pose3d}, {upper_body_weight}")


def integrate_poses(scores: ArrayLike, boxes: ArrayLike, pose2d: ArrayLike, pose3d: ArrayLike,
                    image_size: Sequence[int], *, num_full_body_classes: int, th_pose3d: float, th_iou: float,
                    iou_func: str, min_mode_score: float, th_persondetect: float,
                    score_threshold: Optional[float] = None, min_proposals: int = 0, grouping_boxes: str = "roi",
                    upper_body_weight: float = 0.1, return_intermediates: bool = False) -> Dict[str, Any]:
    """People from pose proposals (lcrnet.md 4): dict(scores (P,), pose2d (P, J, 2), pose3d (P, J, 3)), sorted by
    decreasing score (stable), plus proposals, groups and modes with ``return_intermediates``.

    ``scores`` (R, K+1), ``boxes`` (R, 4) RoIs in pixels, ``pose2d`` (R, K, J, 2) and ``pose3d`` (R, K, J, 3)
    from ``codec.decode_poses``; ``image_size`` (height, width). The five thresholds are an anchor set's
    ``ppi_params`` (``AnchorSet.ppi_kwargs()``); the module docstring lists the release/NAVER switches.
    A person's score is the sum of its best mode's proposal scores and is kept when > ``th_persondetect``.
    """
    _check_arguments(iou_func, grouping_boxes, th_pose3d, upper_body_weight)
    poses2d, poses3d = _numpy(pose2d), _numpy(pose3d)
    roi_index, class_index, selected, _ = select_proposals(_numpy(scores), score_threshold, min_proposals)
    proposal2d, proposal3d = poses2d[roi_index, class_index], poses3d[roi_index, class_index]
    selected = selected.astype(poses3d.dtype)
    if grouping_boxes == "roi":
        group_boxes = _numpy(boxes).astype(poses2d.dtype)[roi_index]
    else:
        group_boxes = _pose_boxes(proposal2d, iou_func, (int(image_size[0]), int(image_size[1])))
    upper_body = class_index + 1 > num_full_body_classes
    groups = _group(selected, group_boxes, proposal2d, iou_func, th_iou)
    people, all_modes = [], []
    for group in groups:
        modes = _modes(group, selected, proposal2d, proposal3d, upper_body, th_pose3d, min_mode_score,
                       upper_body_weight)
        all_modes.append(modes)
        best = int(np.argmax([mode["score"] for mode in modes]))
        if modes[best]["score"] > th_persondetect:
            people.append(modes[best])
    people.sort(key=lambda person: -person["score"])  # stable: ties keep the group order
    joints = poses2d.shape[-2]
    result = {"scores": np.array([person["score"] for person in people], selected.dtype),
              "pose2d": np.stack([person["pose2d"] for person in people]) if people else
              np.zeros((0, joints, 2), poses2d.dtype),
              "pose3d": np.stack([person["pose3d"] for person in people]) if people else
              np.zeros((0, joints, 3), poses3d.dtype)}
    if return_intermediates:
        result.update(proposals={"roi_index": roi_index, "class_index": class_index, "score": selected,
                                 "pose2d": proposal2d, "pose3d": proposal3d, "boxes": group_boxes},
                      groups=groups, modes=all_modes)
    return result if isinstance(scores, np.ndarray) else _to_torch(result)


def _numpy(values: ArrayLike) -> np.ndarray:
    return values.detach().cpu().numpy() if isinstance(values, Tensor) else np.asarray(values)


def _to_torch(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if isinstance(value, dict):
        return {key: _to_torch(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_to_torch(item) for item in value]
    return value
