"""The DEKR test-time pipeline (dekr.md 7): resize, flip test, multi-scale aggregation, pose NMS, optional
heatmap matching, mapping back to the image and rescoring."""
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn
from yacs.config import CfgNode

from ...data.metadata import KeypointSet
from ...data.transforms import to_chw_tensor
from ...utils.errors import ConfigError, DataError
from .._device import module_device
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
    return predict_images(model, [image], cfg, keypoint_set, rescore_net)[0]


def predict_images(model: Model, images: Sequence[np.ndarray], cfg: CfgNode, keypoint_set: KeypointSet,
                   rescore_net: Optional[nn.Module] = None) -> List[Tuple[np.ndarray, np.ndarray]]:
    """``predict_image`` for each image, in order; images of one size go through the network as one batch.

    All images of a size form a single batch: pass no more than fit in memory at once.
    """
    by_size: Dict[Tuple[int, ...], List[int]] = {}
    for index, image in enumerate(images):
        if image.ndim != 3 or image.shape[2] != 3:
            raise DataError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
        by_size.setdefault(image.shape, []).append(index)
    results: List[Tuple[np.ndarray, np.ndarray]] = [None] * len(images)
    for indices in by_size.values():
        predictions = _predict_same_size(model, [images[i] for i in indices], cfg, keypoint_set, rescore_net)
        for index, prediction in zip(indices, predictions):
            results[index] = prediction
    return results


class ScaleOutput(NamedTuple):
    """One scale's flip-averaged network outputs for a batch, and that scale's image-to-input affine."""

    heatmap: torch.Tensor
    posemap: torch.Tensor
    scale: float
    center: np.ndarray
    scale_pair: np.ndarray


def _network_outputs(model: Model, images: Sequence[np.ndarray], cfg: CfgNode,
                     keypoint_set: KeypointSet) -> List[ScaleOutput]:
    """Flip-tested heatmaps and pose maps of same-size images at every scale, in processing order."""
    device = module_device(model)
    outputs = []
    for scale in ordered_scales(cfg.TEST.SCALE_FACTOR):
        resized = [resize_align_multi_scale(image, cfg.DATASET.INPUT_SIZE, scale) for image in images]
        inputs = torch.stack([to_chw_tensor(warped) for warped, _, _ in resized]).to(device)
        heatmap, posemap = forward_with_flip(model, inputs, keypoint_set.flip_index,
                                             keypoint_set.flip_index_with_center, cfg.TEST.FLIP_TEST)
        # Same-size images share the centre and scale pair.
        outputs.append(ScaleOutput(heatmap, posemap, scale, resized[0][1], resized[0][2]))
    return outputs


def _decode(outputs: Sequence[ScaleOutput], image_shape: Tuple[int, ...], cfg: CfgNode,
            keypoint_set: KeypointSet, rescore_net: Optional[nn.Module]) -> Tuple[np.ndarray, np.ndarray]:
    """One image's poses and scores from its (batch-1) outputs at every scale (dekr.md 7.3-7.6)."""
    base_size, _, _ = get_multi_scale_size(image_shape[0], image_shape[1], cfg.DATASET.INPUT_SIZE, 1.0)
    ratio = cfg.DATASET.INPUT_SIZE * 1.0 / cfg.DATASET.OUTPUT_SIZE
    heatmap_sum, proposals = None, []
    for output in outputs:
        reverse_scale = ratio / output.scale
        heatmap_sum = _add_heatmap(heatmap_sum, output.heatmap, reverse_scale, output.scale)
        kernel = peak_pool_kernel(output.heatmap.shape[2], output.heatmap.shape[3], cfg.TEST.POOL_THRESHOLD1,
                                  cfg.TEST.POOL_THRESHOLD2)
        proposals.append(scale_proposals(output.heatmap, output.posemap, reverse_scale, kernel,
                                         cfg.DATASET.MAX_NUM_PEOPLE, cfg.TEST.KEYPOINT_THRESHOLD))
    heatmap_avg = heatmap_sum / len(outputs)
    poses, scores = pose_nms(heatmap_avg, proposals, [output.scale for output in outputs], cfg.TEST.DECREASE,
                             cfg.TEST.NMS_THRE, cfg.TEST.NMS_NUM_THRE, cfg.DATASET.MAX_NUM_PEOPLE)
    if poses.shape[0] and cfg.TEST.MATCH_HMP:
        matched = match_pose_to_heatmap(poses, heatmap_avg, cfg.DATASET.MAX_NUM_PEOPLE,
                                        cfg.TEST.MAX_ABSORB_DISTANCE, cfg.TEST.ADJUST_THRESHOLD,
                                        cfg.TEST.GUASSIAN_KERNEL, cfg.DATASET.SIGMA)
        poses = torch.from_numpy(matched).to(heatmap_avg.device)
    # Officially the centre and scale of the last (smallest) scale map back, equal to scale 1's up to
    # integer truncation of its input size.
    poses = get_final_preds(poses, outputs[-1].center, outputs[-1].scale_pair, base_size)
    if rescore_net is not None and poses.shape[0]:
        scores = rescore_poses(rescore_net, poses, scores, keypoint_set)
    return poses.cpu().numpy().astype(np.float32), scores.cpu().numpy().astype(np.float32)


def _predict_same_size(model: Model, images: Sequence[np.ndarray], cfg: CfgNode, keypoint_set: KeypointSet,
                       rescore_net: Optional[nn.Module]) -> List[Tuple[np.ndarray, np.ndarray]]:
    """Predictions for images of one size: one batched network pass per scale, decoding per image."""
    with torch.no_grad():
        outputs = _network_outputs(model, images, cfg, keypoint_set)
        return [_decode([o._replace(heatmap=o.heatmap[i:i + 1], posemap=o.posemap[i:i + 1]) for o in outputs],
                        images[i].shape, cfg, keypoint_set, rescore_net)
                for i in range(len(images))]
