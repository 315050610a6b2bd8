"""Per-scale aggregation (dekr.md 7.3): up-sampled heatmap sum and centre-peak pose proposals."""
from typing import Tuple

import torch
import torch.nn.functional as F


def up_interpolate(x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Up-sample NCHW ``x`` to ``size`` (h, w) so that input pixel i lands on output pixel factor*i exactly.

    Bilinear with aligned corners onto (size - factor + 1), then the last row/column is repeated
    factor - 1 times.
    """
    factor_h = int(size[0] / x.shape[2])
    factor_w = int(size[1] / x.shape[3])
    inner = F.interpolate(x, size=[size[0] - factor_h + 1, size[1] - factor_w + 1],
                          mode="bilinear", align_corners=True)
    return F.pad(inner, (0, factor_w - 1, 0, factor_h - 1), mode="replicate")


def peak_pool_kernel(height: int, width: int, pool_threshold1: float, pool_threshold2: float) -> int:
    """Max-pool kernel for centre peaks: larger maps use wider neighbourhoods (7, 5, else 3)."""
    map_size = (height + width) / 2.0
    if map_size > pool_threshold1:
        return 7
    if map_size > pool_threshold2:
        return 5
    return 3


def center_peaks(center_map: torch.Tensor, kernel: int, max_people: int,
                 threshold: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Flat indices and values of the top ``max_people`` local maxima of an (h, w) map, kept if > threshold."""
    pooled = F.max_pool2d(center_map[None, None], kernel, 1, kernel // 2)[0, 0]
    peaks = (center_map * (pooled == center_map).to(center_map.dtype)).reshape(-1)
    scores, indices = peaks.topk(min(max_people, peaks.numel()))
    keep = scores > threshold
    return indices[keep], scores[keep]


def scale_proposals(heatmap: torch.Tensor, posemap: torch.Tensor, reverse_scale: float, kernel: int,
                    max_people: int, threshold: float) -> torch.Tensor:
    """(P, K, 3) proposals of one scale: poses at the centre peaks in base-input pixels, centre score third."""
    _, channels, height, width = posemap.shape
    indices, scores = center_peaks(heatmap[0, -1], kernel, max_people, threshold)
    poses = posemap[0].permute(1, 2, 0).reshape(height * width, channels // 2, 2)[indices]
    poses = reverse_scale * poses
    joint_scores = scores[:, None, None].expand(-1, poses.shape[1], 1)
    return torch.cat([poses, joint_scores], dim=2)
