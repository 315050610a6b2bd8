"""End to end: predict_image with a stand-in network whose right answer is known, and COCO records."""
import numpy as np
import pytest
import torch
from torch import nn

from posekit.config import get_cfg
from posekit.data.metadata import COCO
from posekit.evaluation.keypoints import pose_results_to_coco
from posekit.inference.dekr import predict_image

K = COCO.num_joints
# Joint offsets from the centre in output pixels, mirror-symmetric: left joint = mirrored right joint.
SIDE = torch.tensor([0, -1, 1, -2, 2, -3, 3, -4, 4, -5, 5, -2, 2, -2, 2, -2, 2], dtype=torch.float32)
DOWN = torch.tensor([-4, -5, -5, -4, -4, -2, -2, 0, 0, 2, 2, 3, 3, 6, 6, 9, 9], dtype=torch.float32)


def stand_in_model(x):
    """Centre heat 0.9 wherever the input (sampled at 4i, 4j) is bright; joint heat 0.5; constant offsets."""
    bright = (x[:, :1, ::4, ::4] > 0).float()
    _, _, h, w = bright.shape
    heatmap = torch.cat([torch.full((1, K, h, w), 0.5), 0.9 * bright], dim=1)
    offset = -torch.stack((SIDE, DOWN), dim=1).reshape(1, 2 * K, 1, 1).expand(1, 2 * K, h, w)
    return heatmap, offset


def spots_image(*centres):
    image = np.zeros((512, 512, 3), dtype=np.uint8)  # 512 x 512: the resize is the identity
    for cx, cy in centres:
        image[4 * cy, 4 * cx] = 255
    return image


def cfg_for_test():
    cfg = get_cfg()
    cfg.TEST.NMS_THRE, cfg.TEST.NMS_NUM_THRE = 0.05, 8
    return cfg


def expected_pose(cx, cy):
    return torch.stack((4 * (cx + SIDE), 4 * (cy + DOWN)), dim=1).numpy()


@pytest.mark.parametrize("centres", [[(60, 40)], [(20, 30), (100, 90)], [(1, 60)]])  # last: at the border
def test_persons_come_back_in_image_pixels(centres):
    poses, scores = predict_image(stand_in_model, spots_image(*centres), cfg_for_test(), COCO)
    assert poses.dtype == np.float32 and scores.dtype == np.float32
    assert poses.shape == (len(centres), K, 3)
    got = sorted(range(len(centres)), key=lambda i: poses[i, 0, 0])
    for index, (cx, cy) in zip(got, sorted(centres)):
        np.testing.assert_allclose(poses[index, :, :2], expected_pose(cx, cy), atol=1e-3)
        np.testing.assert_allclose(poses[index, :, 2], 0.45, rtol=1e-6)
    np.testing.assert_allclose(scores, 0.45, rtol=1e-6)


def test_symmetric_image_gives_mirrored_poses():
    poses, _ = predict_image(stand_in_model, spots_image((30, 64), (97, 64)), cfg_for_test(), COCO)
    left, right = sorted(poses, key=lambda p: p[0, 0])
    mirrored = right[COCO.flip_index].copy()
    mirrored[:, 0] = 4 * 127 - mirrored[:, 0]  # output columns v <-> 127 - v
    np.testing.assert_allclose(left[:, :2], mirrored[:, :2], atol=1e-3)


def test_no_person_and_rescoring():
    poses, scores = predict_image(stand_in_model, spots_image(), cfg_for_test(), COCO)
    assert poses.shape == (0, K, 3) and scores.shape == (0,)

    class Half(nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = nn.Parameter(torch.tensor(0.5))

        def forward(self, features):
            out = self.bias.expand(features.shape[0], 1).clone()
            out[1:] = float("nan")
            return out

    _, scores = predict_image(stand_in_model, spots_image((20, 30), (100, 90)), cfg_for_test(), COCO, Half())
    np.testing.assert_allclose(sorted(scores), [0.0, 0.225], rtol=1e-6)


def test_pose_results_to_coco_by_hand():
    poses = np.array([[[10.0, 20.0, 0.5], [30.0, 5.0, 0.25]]], dtype=np.float32)
    records = pose_results_to_coco(397133, poses, np.array([0.75], dtype=np.float32))
    assert records == [{"image_id": 397133, "category_id": 1, "keypoints": [10.0, 20.0, 0.5, 30.0, 5.0, 0.25],
                        "score": 0.75, "bbox": [10.0, 5.0, 20.0, 15.0]}]
