"""Optional refinement of NMS poses on the averaged keypoint heatmaps (dekr.md 7.5, ``TEST.MATCH_HMP``)."""
import warnings
from typing import Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import curve_fit

ABSORB_POOL_KERNEL = 5
# Official Gaussian fits give up after this many function evaluations.
FIT_MAX_EVALUATIONS = 300


def absorb_heat(poses: torch.Tensor, keypoint_heatmap: torch.Tensor, num_peaks: int,
                max_distance: float) -> torch.Tensor:
    """Move each joint onto the nearest of its joint's top ``num_peaks`` 5x5 heatmap peaks if nearer than ``max_distance``."""
    num_joints, height, width = keypoint_heatmap.shape
    pooled = F.max_pool2d(keypoint_heatmap[None], ABSORB_POOL_KERNEL, 1, ABSORB_POOL_KERNEL // 2)[0]
    peaks = keypoint_heatmap * (pooled == keypoint_heatmap).to(keypoint_heatmap.dtype)
    _, flat = peaks.reshape(num_joints, -1).topk(min(num_peaks, height * width), dim=1)
    peak_xy = torch.stack((flat % width, flat // width), dim=2).to(poses.dtype)  # (K, peaks, 2)
    dist = torch.sqrt(((poses[:, :, None, :2] - peak_xy[None]) ** 2).sum(dim=3))  # (N, K, peaks)
    nearest_dist, nearest = dist.min(dim=2)
    nearest_xy = torch.gather(peak_xy.expand(poses.shape[0], -1, -1, -1), 2,
                              nearest[..., None, None].expand(-1, -1, 1, 2))[:, :, 0]
    out = poses.clone()
    out[..., :2] = torch.where((nearest_dist < max_distance)[..., None], nearest_xy, poses[..., :2])
    return out


def _gaussian2d(grid: np.ndarray, amplitude: float, row0: float, col0: float, sigma: float) -> np.ndarray:
    """Unnormalised isotropic Gaussian evaluated at grid = (rows, cols)."""
    rows, cols = grid
    return amplitude * np.exp(-((cols - col0) ** 2 + (rows - row0) ** 2) / (2 * sigma ** 2))


def fit_gaussian_center(window: np.ndarray, row: int, col: int, sigma: float) -> Optional[Tuple[float, float]]:
    """Fitted (row, col) centre of a Gaussian on ``window`` started at (row, col); None when the fit fails.

    The grid is built in the data's own row-major order, so non-square (border) windows fit correctly
    (the official grid is column-major; see docs/differences.md).
    """
    rows, cols = np.indices(window.shape, dtype=np.float64)
    grid = np.vstack((rows.ravel(), cols.ravel()))
    guess = (window[row, col], row, col, sigma)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            params, _ = curve_fit(_gaussian2d, grid, window.ravel(), p0=guess, maxfev=FIT_MAX_EVALUATIONS)
    except (RuntimeError, ValueError):
        return None
    return params[1], params[2]


def _window_bounds(center: int, size: int, radius: int) -> Tuple[int, int, int]:
    """Clamped centre and inclusive window bounds along one axis."""
    safe = min(max(0, center), size - 1)
    return safe, max(0, safe - radius), min(size - 1, safe + radius)


def adjust(poses: np.ndarray, keypoint_heatmap: np.ndarray, score_threshold: float, radius: int,
           sigma: float) -> np.ndarray:
    """Move every joint scoring above ``score_threshold`` to the centre of a Gaussian fitted around it."""
    out = poses.copy()
    num_joints, height, width = keypoint_heatmap.shape
    for joint in range(num_joints):
        fitted: Dict[Tuple[int, int], Tuple[float, float]] = {}
        for person in np.flatnonzero(poses[:, joint, 2] > score_threshold):
            x, y = poses[person, joint, :2]
            key = (int(x + 0.5), int(y + 0.5))  # truncation toward zero, as officially
            if key not in fitted:
                row, row_lo, row_hi = _window_bounds(key[1], height, radius)
                col, col_lo, col_hi = _window_bounds(key[0], width, radius)
                window = keypoint_heatmap[joint, row_lo:row_hi + 1, col_lo:col_hi + 1].astype(np.float64)
                center = fit_gaussian_center(window, row - row_lo, col - col_lo, sigma)
                if center is None:
                    continue
                fitted[key] = (col_lo + center[1], row_lo + center[0])
            out[person, joint, :2] = fitted[key]
    return out


def match_pose_to_heatmap(poses: torch.Tensor, heatmap_avg: torch.Tensor, num_peaks: int, max_distance: float,
                          score_threshold: float, radius: int, sigma: float) -> np.ndarray:
    """absorb_heat then adjust on (N, K, 3) base-input poses; returns host float32 poses."""
    keypoint_heatmap = heatmap_avg[0, :-1]
    absorbed = absorb_heat(poses, keypoint_heatmap, num_peaks, max_distance).cpu().numpy()
    return adjust(absorbed, keypoint_heatmap.cpu().numpy(), score_threshold, radius, sigma)
