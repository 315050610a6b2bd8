"""Aggregation (dekr.md 7.3), pose NMS (7.4), heatmap matching (7.5) and rescore features (7.6) on hand-made maps."""
import math

import numpy as np
import pytest
import torch

from posekit.data.metadata import COCO
from posekit.inference.dekr.aggregate import center_peaks, peak_pool_kernel, scale_proposals, up_interpolate
from posekit.inference.dekr.match_heatmap import absorb_heat, adjust
from posekit.inference.dekr.pose_nms import (heat_values, nms_groups, nms_walk, normalize_scale_scores, ordered_scales,
                                        pose_nms)
from posekit.inference.dekr.rescore import rescore_features
from posekit.utils.errors import ConfigError


def test_up_interpolate_at_unit_scale_hits_every_fourth_pixel():
    x = torch.randn(1, 2, 5, 7)
    up = up_interpolate(x, (20, 28))
    assert up.shape == (1, 2, 20, 28)
    assert torch.equal(up[:, :, ::4, ::4], x)
    assert torch.equal(up[:, :, -4:, -1], x[:, :, -1:, -1].expand(1, 2, 4))  # replicated border
    torch.testing.assert_close(up[0, 0, 0, 2], (x[0, 0, 0, 0] + x[0, 0, 0, 1]) / 2)


@pytest.mark.parametrize("height, width, kernel", [(300, 302, 7), (200, 302, 5), (200, 200, 3)])
def test_pool_kernel_thresholds(height, width, kernel):
    assert peak_pool_kernel(height, width, 300, 200) == kernel


def test_center_peaks_order_threshold_and_suppression():
    center = torch.zeros(8, 8)
    center[1, 1], center[1, 2] = 0.5, 0.4  # 0.4 is not a 3x3 maximum
    center[6, 5] = 0.8
    center[4, 7] = 0.005                    # below the keypoint threshold
    indices, scores = center_peaks(center, 3, 30, 0.01)
    assert indices.tolist() == [6 * 8 + 5, 1 * 8 + 1]
    torch.testing.assert_close(scores, torch.tensor([0.8, 0.5]))
    indices, _ = center_peaks(center, 3, 1, 0.01)
    assert indices.tolist() == [6 * 8 + 5]


def test_scale_proposals_reads_the_posemap_at_the_peak():
    k = 2
    heatmap = torch.zeros(1, k + 1, 4, 5)
    heatmap[0, k, 2, 3] = 0.9
    posemap = torch.arange(2 * k * 20, dtype=torch.float32).view(1, 2 * k, 4, 5)
    poses = scale_proposals(heatmap, posemap, 4.0, 3, 30, 0.01)
    pixel = 2 * 5 + 3
    expected = torch.tensor([[[4 * pixel, 4 * (20 + pixel), 0.9], [4 * (40 + pixel), 4 * (60 + pixel), 0.9]]])
    torch.testing.assert_close(poses, expected)


def test_scale_scores_are_normalised_to_the_unit_scale():
    unit = torch.tensor([[[0, 0, 0.8]], [[1, 1, 0.4]]])
    double = torch.tensor([[[0, 0, 0.5]], [[2, 2, 0.25]]])
    out = normalize_scale_scores([double, unit], [1, 2], 0.9)  # descending order: scale 2 first
    torch.testing.assert_close(out[0][:, 0, 2], torch.tensor([0.5, 0.25]) / 0.5 * 0.8 * 0.9)
    assert torch.equal(out[1], unit)
    with pytest.raises(ConfigError, match="SCALE_FACTOR"):
        ordered_scales([0.5, 2])


def test_heat_values_floor_and_clamp():
    heatmap = torch.arange(3 * 4 * 5, dtype=torch.float32).view(3, 4, 5)  # K = 2 plus centre
    coords = torch.tensor([[[1.9, 2.7], [-3.0, 10.0]]])
    values = heat_values(coords, heatmap)
    assert values.tolist() == [[heatmap[0, 2, 1].item(), heatmap[1, 3, 0].item()]]


def person(x0, y0, size=100.0):
    """A 17-joint pose spread over a size x size box (distinct joints)."""
    t = torch.linspace(0, 1, COCO.num_joints)
    return torch.stack((x0 + size * t, y0 + size * (t ** 2)), dim=1)


def test_nms_groups_near_duplicates_only():
    coords = torch.stack([person(0, 0), person(1, 1), person(300, 0)])
    groups = nms_groups(coords, 0.05, 8)
    assert groups.tolist() == [[True, True, False], [True, True, False], [False, False, True]]


def test_nms_walk_order_and_skipping_rule():
    groups = np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1]], dtype=bool)
    # Pose 0's best member is 1: keep 1, suppress 0 and 1. Pose 2's best member is 1, already taken:
    # skip without suppressing, so 2 is never kept.
    assert nms_walk(groups, np.array([0.2, 0.9, 0.5])) == [1]
    assert nms_walk(groups, np.array([0.2, 0.5, 0.9])) == [1, 2]
    assert nms_walk(groups, np.array([0.9, 0.5, 0.2])) == [0]  # 2's best member (1) was suppressed by 0


def test_nms_walk_keeps_a_degenerate_pose_alone():
    groups = np.array([[0, 0], [0, 1]], dtype=bool)
    assert nms_walk(groups, np.array([0.3, 0.6])) == [0, 1]


def test_pose_nms_two_overlapping_persons_and_cap():
    k = COCO.num_joints
    heatmap = torch.full((1, k + 1, 400, 800), 0.5)
    heatmap[0, :k, :, 400:] = 0.25
    a, b, c = person(10, 10), person(11, 11), person(500, 10)
    proposals = torch.stack([torch.cat([p, torch.full((k, 1), s)], dim=1) for p, s in
                             [(a, 0.9), (b, 0.8), (c, 0.7)]])
    poses, scores = pose_nms(heatmap, [proposals], [1], 1.0, 0.05, 8, 30)
    # a and b are duplicates with equal heat scores: the first (a) is kept; c is separate.
    torch.testing.assert_close(poses[:, :, :2], torch.stack([a, c]))
    torch.testing.assert_close(scores, torch.tensor([0.9 * 0.5, 0.7 * 0.25]))
    poses, scores = pose_nms(heatmap, [proposals[[2, 0]]], [1], 1.0, 0.05, 8, 1)
    torch.testing.assert_close(poses[0, :, :2], a)  # capped by heat score, not centre score


def test_pose_nms_of_nothing():
    poses, scores = pose_nms(torch.zeros(1, 18, 8, 8), [torch.zeros(0, 17, 3)], [1], 1.0, 0.05, 8, 30)
    assert poses.shape == (0, 17, 3) and scores.shape == (0,)


def test_rescore_features_by_hand():
    j = torch.arange(COCO.num_joints, dtype=torch.float32)
    poses = torch.stack((j, 2 * j, torch.full_like(j, 0.5)), dim=1)[None]
    features = rescore_features(poses, COCO)
    assert features.shape == (1, COCO.rescore_feature_size) == (1, 74)
    norm = 6 * math.sqrt(5)  # links 9 (5, 11) and 11 (6, 12) both span 6 joints of length sqrt(5)
    for i, (a, b) in enumerate(COCO.rescore_links):
        assert features[0, 2 * i].item() == pytest.approx((a - b) / norm, rel=1e-6)
        assert features[0, 2 * i + 1].item() == pytest.approx(2 * (a - b) / norm, rel=1e-6)
        assert features[0, 38 + i].item() == pytest.approx(abs(a - b) / 6, rel=1e-6)
    assert features[0, 57:].tolist() == [0.5] * 17


def test_rescore_normaliser_floor():
    poses = torch.zeros(1, 17, 3)
    poses[0, 1, 0] = 0.5  # nose-left eye link of length 0.5; torso links have length 0
    features = rescore_features(poses, COCO)
    assert features[0, 0].item() == -0.5 and features[0, 38].item() == 0.5


def test_absorb_heat_moves_only_near_joints():
    heatmap = torch.zeros(2, 40, 40)
    heatmap[0, 10, 12] = 1.0
    heatmap[1, 30, 30] = 1.0
    poses = torch.tensor([[[13.4, 9.2, 0.5], [2.0, 2.0, 0.5]]])
    out = absorb_heat(poses, heatmap, 30, 10.0)
    assert out[0, 0].tolist() == [12.0, 10.0, 0.5]
    assert out[0, 1].tolist() == [2.0, 2.0, 0.5]


@pytest.mark.parametrize("center", [(20.3, 15.7), (2.4, 30.6)])  # the second window is clipped (non-square)
def test_adjust_fits_the_gaussian_centre(center):
    rows, cols = np.indices((40, 48), dtype=np.float64)
    heatmap = 0.8 * np.exp(-((cols - center[0]) ** 2 + (rows - center[1]) ** 2) / (2 * 2.0 ** 2))
    poses = np.array([[[round(center[0]), round(center[1]), 0.5]], [[0.0, 0.0, 0.01]]], dtype=np.float32)
    out = adjust(poses, heatmap[None], 0.05, 6, 2.0)
    np.testing.assert_allclose(out[0, 0, :2], center, atol=1e-3)
    assert out[1].tolist() == poses[1].tolist()  # below the adjust threshold
