"""Non-maximum suppression on boxes (IoU) and on poses (COCO object keypoint similarity)."""
import torch
from torch import Tensor

from posekit.ops import _library
from posekit.ops._checks import check_floating, check_same, check_shape, check_tensor


def _check_scores(scores: Tensor, count: int, owner: Tensor, owner_name: str) -> None:
    check_tensor(scores, "scores", f"[{count}]", 1)
    check_same(owner, owner_name, scores, "scores")
    check_shape(scores, "scores", (count,), "[N]")


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS of (x1, y1, x2, y2) boxes; drops boxes whose IoU with a kept one exceeds the threshold.

    Returns int64 indices of the kept boxes by decreasing score (equal scores: lower index first).
    """
    check_tensor(boxes, "boxes", "[N, 4]", 2)
    check_floating(boxes, "boxes")
    if boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape [N, 4] (x1, y1, x2, y2), got {tuple(boxes.shape)}")
    _check_scores(scores, boxes.shape[0], boxes, "boxes")
    if boxes.shape[0] == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    return _library.nms(boxes, scores, float(iou_threshold))


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS within each category of ``idxs``; kept indices by decreasing score across categories."""
    check_tensor(idxs, "idxs", "[N]", 1)
    check_shape(idxs, "idxs", (boxes.shape[0],), "[N]")
    if idxs.dtype.is_floating_point or idxs.dtype == torch.bool:
        raise TypeError(f"idxs must hold integer category ids, got {idxs.dtype}")
    if boxes.numel() == 0:
        return nms(boxes, scores, iou_threshold)
    # Shifting each category by more than the extent of all boxes makes boxes of different categories
    # disjoint, so one NMS call handles them all.
    shift = idxs.to(boxes) * (boxes.max() - boxes.min() + 1)
    return nms(boxes + shift[:, None], scores, iou_threshold)


def oks_nms(keypoints: Tensor, scores: Tensor, areas: Tensor, sigmas: Tensor, threshold: float) -> Tensor:
    """Greedy NMS on COCO object keypoint similarity (OKS) between poses.

    keypoints is Tensor[N, K, 3] (x, y, visibility or score); every one of the K joints counts in the
    OKS whatever its visibility. A candidate is dropped when its OKS with a kept pose exceeds
    ``threshold``, computed with the kept pose's area: mean over joints of exp(-d^2 / (2 * area *
    (2 * sigma)^2)). Returns int64 indices of the kept poses by decreasing score (ties: lower index first).
    """
    check_tensor(keypoints, "keypoints", "[N, K, 3]", 3)
    check_floating(keypoints, "keypoints")
    count, joints = keypoints.shape[:2]
    if keypoints.shape[2] != 3:
        raise ValueError(f"keypoints must have shape [N, K, 3] (x, y, visibility), got {tuple(keypoints.shape)}")
    _check_scores(scores, count, keypoints, "keypoints")
    check_tensor(areas, "areas", f"[{count}]", 1)
    check_same(keypoints, "keypoints", areas, "areas")
    check_shape(areas, "areas", (count,), "[N]")
    check_tensor(sigmas, "sigmas", f"[{joints}]", 1)
    check_same(keypoints, "keypoints", sigmas, "sigmas")
    check_shape(sigmas, "sigmas", (joints,), "[K]")
    if count == 0:
        return torch.empty(0, dtype=torch.long, device=keypoints.device)
    return _library.oks_nms(keypoints, scores, areas, sigmas, float(threshold))
