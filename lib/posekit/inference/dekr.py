"""The DEKR test-time pipeline (spec 7): resize, flip test, multi-scale aggregation, pose NMS, optional
heatmap matching, mapping back to the image and rescoring; plus COCO-style result records (7.7)."""
from typing import List, Optional, Tuple

import numpy as np
import torch
from torch import nn
from yacs.config import CfgNode

from ..data.metadata import KeypointSet
from ..data.transforms import to_normalized_tensor
from ..utils.errors import ConfigError, DataError
from ._device import module_device
from .aggregate import peak_pool_kernel, scale_proposals, up_interpolate
from .flip import Model, forward_with_flip
from .match_heatmap import match_pose_to_heatmap
from .pose_nms import ordered_scales, pose_nms
from .rescore import rescore_poses
from .resize import get_final_preds, get_multi_scale_size, resize_align_multi_scale


def _add_heatmap(heatmap_sum: Optional[torch.Tensor], heatmap: torch.Tensor, reverse_scale: float,
                 scale: float) -> torch.Tensor:
    """Up-sample one scale's heatmap to base-input size and add it to the running sum."""
    size = (int(reverse_scale * heatmap.shape[2]), int(reverse_scale * heatmap.shape[3]))
    upsampled = up_interpolate(heatmap, size)
    if heatmap_sum is None:
        return upsampled
    if upsampled.shape != heatmap_sum.shape:
        raise ConfigError(f"TEST.SCALE_FACTOR {scale} gives a {tuple(upsampled.shape[2:])} heatmap, not the base "
                          f"{tuple(heatmap_sum.shape[2:])}; use factors like 0.5, 1, 2")
    return heatmap_sum + upsampled


def predict_image(model: Model, image: np.ndarray, cfg: CfgNode, keypoint_set: KeypointSet,
                  rescore_net: Optional[nn.Module] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Poses (N, K, 3: x, y, joint score) in image pixels and pose scores (N,) for one RGB uint8 image."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise DataError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    scales = ordered_scales(cfg.TEST.SCALE_FACTOR)
    device = module_device(model)
    base_size, _, _ = get_multi_scale_size(image.shape[0], image.shape[1], cfg.DATASET.INPUT_SIZE, 1.0)
    ratio = cfg.DATASET.INPUT_SIZE * 1.0 / cfg.DATASET.OUTPUT_SIZE
    heatmap_sum, proposals = None, []
    with torch.no_grad():
        for scale in scales:
            resized, center, scale_pair = resize_align_multi_scale(image, cfg.DATASET.INPUT_SIZE, scale)
            inputs = to_normalized_tensor(resized)[None].to(device)
            heatmap, posemap = forward_with_flip(model, inputs, keypoint_set.flip_index,
                                                 keypoint_set.flip_index_with_center, cfg.TEST.FLIP_TEST)
            reverse_scale = ratio / scale
            heatmap_sum = _add_heatmap(heatmap_sum, heatmap, reverse_scale, scale)
            kernel = peak_pool_kernel(heatmap.shape[2], heatmap.shape[3], cfg.TEST.POOL_THRESHOLD1,
                                      cfg.TEST.POOL_THRESHOLD2)
            proposals.append(scale_proposals(heatmap, posemap, reverse_scale, kernel, cfg.DATASET.MAX_NUM_PEOPLE,
                                             cfg.TEST.KEYPOINT_THRESHOLD))
        heatmap_avg = heatmap_sum / len(scales)
        poses, scores = pose_nms(heatmap_avg, proposals, scales, cfg.TEST.DECREASE, cfg.TEST.NMS_THRE,
                                 cfg.TEST.NMS_NUM_THRE, cfg.DATASET.MAX_NUM_PEOPLE)
        if poses.shape[0] and cfg.TEST.MATCH_HMP:
            matched = match_pose_to_heatmap(poses, heatmap_avg, cfg.DATASET.MAX_NUM_PEOPLE,
                                            cfg.TEST.MAX_ABSORB_DISTANCE, cfg.TEST.ADJUST_THRESHOLD,
                                            cfg.TEST.GUASSIAN_KERNEL, cfg.DATASET.SIGMA)
            poses = torch.from_numpy(matched).to(device)
        # Officially the centre and scale of the last (smallest) scale map back, equal to scale 1's up to
        # integer truncation of its input size.
        poses = get_final_preds(poses, center, scale_pair, base_size)
        if rescore_net is not None and poses.shape[0]:
            scores = rescore_poses(rescore_net, poses, scores, keypoint_set)
    return poses.cpu().numpy().astype(np.float32), scores.cpu().numpy().astype(np.float32)


def pose_results_to_coco(image_id: int, poses: np.ndarray, scores: np.ndarray) -> List[dict]:
    """COCO result records (category 1, 3K keypoint floats, score, joint bounding box) for one image's poses."""
    records = []
    for pose, score in zip(np.asarray(poses, dtype=np.float64), scores):
        low, high = pose[:, :2].min(axis=0), pose[:, :2].max(axis=0)
        records.append({
            "image_id": int(image_id),
            "category_id": 1,
            "keypoints": [float(v) for v in pose.reshape(-1)],
            "score": float(score),
            "bbox": [float(low[0]), float(low[1]), float(high[0] - low[0]), float(high[1] - low[1])],
        })
    return records
