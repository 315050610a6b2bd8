"""Pose NMS and pose scores (dekr.md 7.4)."""
from typing import List, Sequence, Tuple

import numpy as np
import torch

from ...utils.errors import ConfigError


def ordered_scales(scales: Sequence[float]) -> List[float]:
    """Scales in the official descending processing order; scale 1 must be among them (the NMS reference)."""
    ordered = sorted(scales, reverse=True)
    if 1 not in ordered:
        raise ConfigError(f"TEST.SCALE_FACTOR must contain 1 (pose NMS is relative to it), got {list(scales)}")
    return ordered


def normalize_scale_scores(proposals: List[torch.Tensor], scales: Sequence[float],
                           decrease: float) -> List[torch.Tensor]:
    """Rescale each non-unit scale's centre scores so its maximum is the unit scale's maximum x ``decrease``."""
    reference = ordered_scales(scales).index(1)
    max_score = _max_score(proposals[reference])
    out = []
    for i, poses in enumerate(proposals):
        if i != reference:
            poses = poses.clone()
            poses[:, :, 2] = poses[:, :, 2] / _max_score(poses) * max_score * decrease
        out.append(poses)
    return out


def _max_score(poses: torch.Tensor):
    """Largest centre score of a scale's proposals, 1 when it has none."""
    return poses[:, :, 2].max() if poses.shape[0] else 1


def heat_values(coords: torch.Tensor, heatmap: torch.Tensor) -> torch.Tensor:
    """(P, K) joint heat values read at floor(x), floor(y), clamped into the (K+1, H, W) map."""
    num_joints, height, width = heatmap.shape[0] - 1, heatmap.shape[1], heatmap.shape[2]
    rows = torch.clamp(torch.floor(coords[..., 1]), 0, height - 1).long()
    cols = torch.clamp(torch.floor(coords[..., 0]), 0, width - 1).long()
    joints = torch.arange(num_joints, device=coords.device).expand_as(rows)
    return heatmap[joints, rows, cols]


def nms_groups(coords: torch.Tensor, nms_thre: float, nms_num_thre: int) -> torch.Tensor:
    """(P, P) bool: row i marks the poses with more than ``nms_num_thre`` joints within the threshold of pose i."""
    extent = coords.amax(dim=1) - coords.amin(dim=1)
    area = (extent ** 2).sum(dim=1)
    dist = torch.sqrt(((coords[:, None] - coords[None]) ** 2).sum(dim=3))
    close = dist < (nms_thre * torch.sqrt(area))[:, None, None]
    return close.sum(dim=2) > nms_num_thre


def nms_walk(groups: np.ndarray, heat_score: np.ndarray) -> List[int]:
    """Official greedy walk: keep each unsuppressed pose's best-scoring group member, suppress the group.

    A group is skipped without suppressing anything when its best member was already taken. A pose whose
    group is empty (all its joints coincide, so its threshold is 0) forms a group of its own instead of
    crashing as officially.
    """
    suppressed = np.zeros(len(groups), dtype=bool)
    keep = []
    for i in range(len(groups)):
        if suppressed[i]:
            continue
        members = np.flatnonzero(groups[i])
        if members.size == 0:
            members = np.array([i])
        best = members[np.argmax(heat_score[members])]
        if suppressed[best]:
            continue
        keep.append(int(best))
        suppressed[members] = True
    return keep


def pose_nms(heatmap_avg: torch.Tensor, proposals: List[torch.Tensor], scales: Sequence[float], decrease: float,
             nms_thre: float, nms_num_thre: int, max_people: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Merge all scales' proposals, suppress duplicates; return poses (N, K, 3) and pose scores (N,) on device.

    The third pose column becomes centre score x heat value; the pose score is its mean over joints.
    """
    proposals = normalize_scale_scores(proposals, scales, decrease)
    poses = torch.cat(proposals, dim=0)
    num_joints = heatmap_avg.shape[1] - 1
    if poses.shape[0] == 0:
        return poses.new_zeros((0, num_joints, 3)), poses.new_zeros((0,))
    coords = poses[:, :, :2]
    heatval = heat_values(coords, heatmap_avg[0])
    heat_score = heatval.sum(dim=1) / num_joints
    poses = torch.cat([coords, poses[:, :, 2:] * heatval[..., None]], dim=2)
    # The walk is sequential and tiny (at most MAX_NUM_PEOPLE per scale): one small transfer beats
    # hundreds of device round trips.
    groups = nms_groups(coords, nms_thre, nms_num_thre).cpu().numpy()
    keep = torch.as_tensor(nms_walk(groups, heat_score.cpu().numpy()), dtype=torch.long, device=poses.device)
    poses, heat_score = poses[keep], heat_score[keep]
    if len(keep) > max_people:
        heat_score, top = torch.topk(heat_score, max_people)
        poses = poses[top]
    return poses, poses[:, :, 2].mean(dim=1)
