"""Rescoring (dekr.md 7.6): pose features for the rescore net and the rescored pose scores."""
import torch
from torch import nn

from ...data.metadata import KeypointSet
from ...utils.errors import ConfigError
from .._device import module_device

# Official: links 9 and 11 (COCO shoulder-hip; CrowdPose left hip-knee and knee-ankle) normalise the rest.
NORMALIZER_LINKS = (9, 11)


def rescore_features(poses: torch.Tensor, keypoint_set: KeypointSet) -> torch.Tensor:
    """(N, K, 3) poses (x, y, joint score) -> (N, 3L + K) features: normalised link vectors, lengths, joint scores."""
    if not keypoint_set.rescore_links:
        raise ConfigError(f"keypoint set '{keypoint_set.name}' defines no rescore links")
    first, second = zip(*keypoint_set.rescore_links)
    vectors = poses[:, list(first), :2] - poses[:, list(second), :2]
    lengths = torch.sqrt(vectors[..., 0] ** 2 + vectors[..., 1] ** 2)
    normalizer = lengths[:, list(NORMALIZER_LINKS)].sum(dim=1) / 2
    normalizer = torch.clamp(normalizer, min=1)[:, None]
    vectors = (vectors / normalizer[..., None]).reshape(poses.shape[0], -1)
    return torch.cat([vectors, lengths / normalizer, poses[:, :, 2]], dim=1)


def rescore_poses(rescore_net: nn.Module, poses: torch.Tensor, scores: torch.Tensor,
                  keypoint_set: KeypointSet) -> torch.Tensor:
    """Final scores = predicted OKS x pose score (NaN predictions count as 0), on the net's device."""
    device = module_device(rescore_net)
    predicted = rescore_net(rescore_features(poses.to(device), keypoint_set))[:, 0]
    predicted = torch.where(torch.isnan(predicted), torch.zeros_like(predicted), predicted)
    return predicted * scores.to(device)
