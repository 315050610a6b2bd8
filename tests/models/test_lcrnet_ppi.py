"""LCR-Net pose proposals integration on hand-made proposal sets whose answers are worked out here (lcrnet.md 4)."""
import numpy as np
import pytest
import torch

from posekit.models.lcrnet.ppi import _plus_one_iou, integrate_poses, select_proposals
from posekit.utils.errors import ConfigError

J = 13
IMAGE = (480, 640)
# An upright person in a 100 x 200 box: (x, y) per joint; hips at x 40 / 60, shoulders at 30 / 70.
BASE2D = np.array([[45, 195], [55, 195], [44, 150], [56, 150], [40, 110], [60, 110], [25, 100], [75, 100],
                   [28, 70], [72, 70], [30, 45], [70, 45], [50, 5]], np.float64)
BASE3D = np.linspace(-0.5, 0.5, 3 * J).reshape(J, 3)
PARAMS = dict(th_pose3d=0.3, th_iou=0.2, iou_func="bbox", min_mode_score=0.05, th_persondetect=0.5)
SWAP = [1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 12]


def dense(entries, num_classes):
    """Dense PPI inputs from [(roi box, {class (1-based): (score, pose2d, pose3d)}), ...]."""
    rois = len(entries)
    scores = np.zeros((rois, num_classes + 1))
    pose2d = np.zeros((rois, num_classes, J, 2))
    pose3d = np.zeros((rois, num_classes, J, 3))
    for r, (_, per_class) in enumerate(entries):
        for c, (score, p2d, p3d) in per_class.items():
            scores[r, c], pose2d[r, c - 1], pose3d[r, c - 1] = score, p2d, p3d
        scores[r, 0] = 1 - scores[r, 1:].sum()
    boxes = np.array([box for box, _ in entries], np.float64)
    return scores, boxes, pose2d, pose3d


def two_people():
    shift = np.array([300.0, 0.0])
    return dense([([0, 0, 100, 200], {1: (0.9, BASE2D, BASE3D)}),
                  ([4, 0, 104, 200], {1: (0.5, BASE2D + [4, 0], BASE3D + 0.01)}),
                  # Same place as the first, another 3D pose: a second mode of person A, not averaged in.
                  ([0, 0, 100, 200], {1: (0.6, BASE2D, BASE3D + 1.0)}),
                  ([300, 0, 400, 200], {1: (0.7, BASE2D + shift, BASE3D)}),
                  ([306, 0, 406, 200], {1: (0.2, BASE2D + shift + [6, 0], BASE3D)})], num_classes=1)


def test_two_people_are_score_weighted_means_of_their_main_modes():
    out = integrate_poses(*two_people(), IMAGE, num_full_body_classes=1, return_intermediates=True, **PARAMS)
    assert [len(group) for group in out["groups"]] == [3, 2]
    assert [len(modes) for modes in out["modes"]] == [2, 1]
    # Person A: mode of proposals 0 and 1 (0.9 + 0.5); x shift (0.5 * 4) / 1.4, 3D shift 0.5 * 0.01 / 1.4.
    # Person B: 0.7 + 0.2, x = 300 + 0.2 * 6 / 0.9.
    np.testing.assert_allclose(out["scores"], [1.4, 0.9], rtol=1e-12)
    np.testing.assert_allclose(out["pose2d"][0], BASE2D + [2 / 1.4, 0], rtol=1e-12)
    np.testing.assert_allclose(out["pose3d"][0], BASE3D + 0.005 / 1.4, rtol=1e-12)
    np.testing.assert_allclose(out["pose2d"][1], BASE2D + [300 + 1.2 / 0.9, 0], rtol=1e-12)
    np.testing.assert_allclose(out["pose3d"][1], BASE3D, rtol=1e-12)
    strict = integrate_poses(*two_people(), IMAGE, num_full_body_classes=1, **dict(PARAMS, th_persondetect=1.0))
    np.testing.assert_allclose(strict["scores"], [1.4], rtol=1e-12)


def test_torch_inputs_give_the_same_tensors():
    arrays = two_people()
    out = integrate_poses(*map(torch.from_numpy, arrays), IMAGE, num_full_body_classes=1, **PARAMS)
    assert isinstance(out["scores"], torch.Tensor) and out["pose3d"].dtype == torch.float64
    np.testing.assert_allclose(out["pose2d"].numpy()[1], BASE2D + [300 + 1.2 / 0.9, 0], rtol=1e-12)


def test_left_right_swapped_duplicate_groups_only_with_lr_closeness():
    swapped2d = BASE2D[SWAP] + [200, 0]
    entries = [([200, 0, 300, 200], {1: (0.8, BASE2D + [200, 0], BASE3D)}),
               ([200, 0, 300, 200], {1: (0.3, swapped2d, BASE3D + 0.5)})]
    params = dict(PARAMS, th_iou=0.05, th_persondetect=0.2)
    # Direct torso distance: hips 20 px, shoulders 40 px apart -> 30 / (2 * 201) = 0.0746 > 0.05.
    plain = integrate_poses(*dense(entries, 1), IMAGE, num_full_body_classes=1, **dict(params, iou_func="torso"))
    np.testing.assert_allclose(plain["scores"], [0.8, 0.3])
    # Swapped, the duplicate's torso lies on the first pose: one person, its 3D too far for a common mode.
    lr = integrate_poses(*dense(entries, 1), IMAGE, num_full_body_classes=1, return_intermediates=True,
                         **dict(params, iou_func="torsoLR"))
    assert len(lr["groups"]) == 1 and len(lr["modes"][0]) == 2
    np.testing.assert_allclose(lr["scores"], [0.8])
    np.testing.assert_allclose(lr["pose2d"][0], BASE2D + [200, 0])


def truncated_person():
    """A full-body proposal (class 1) and an upper-body one (class 2) of one person, K = 2, K_full = 1."""
    full2d, upper2d = np.full((J, 2), 10.0), np.full((J, 2), 40.0)
    upper2d[:4] = 46.0  # the upper-body anchor's guessed legs
    return dense([([0, 0, 100, 200], {1: (0.3, full2d, np.zeros((J, 3)))}),
                  ([0, 0, 100, 100], {2: (0.6, upper2d, np.full((J, 3), 0.1))})], num_classes=2)


def test_truncated_person_legs_trust_the_full_body_proposal():
    out = integrate_poses(*truncated_person(), IMAGE, num_full_body_classes=1, **PARAMS)
    # Upper joints: (0.3 * 10 + 0.6 * 40) / 0.9 = 30; legs: (0.3 * 10 + 0.06 * 46) / 0.36 = 16.
    np.testing.assert_allclose(out["scores"], [0.9])
    np.testing.assert_allclose(out["pose2d"][0, 4:], 30.0)
    np.testing.assert_allclose(out["pose2d"][0, :4], 16.0)
    np.testing.assert_allclose(out["pose3d"][0, 4:], 0.06 / 0.9)
    np.testing.assert_allclose(out["pose3d"][0, :4], 0.006 / 0.36)
    # The release's demos pass K = 2 (all anchors): no down-weighting, legs (3 + 27.6) / 0.9 = 34.
    release = integrate_poses(*truncated_person(), IMAGE, num_full_body_classes=2, **PARAMS)
    np.testing.assert_allclose(release["pose2d"][0, :4], 34.0)


def test_pose_boxes_group_what_roi_boxes_keep_apart_and_are_clipped():
    pose2d = BASE2D - [20, 0]
    pose2d[6] = [-20, 100]  # the right wrist outside the image: the pose box starts at x = 0
    entries = [([0, 0, 100, 200], {1: (0.8, pose2d, BASE3D)}),
               ([150, 0, 250, 200], {1: (0.4, pose2d, BASE3D)})]
    roi = integrate_poses(*dense(entries, 1), IMAGE, num_full_body_classes=1, **dict(PARAMS, th_persondetect=0.1))
    assert len(roi["scores"]) == 2
    pose = integrate_poses(*dense(entries, 1), IMAGE, num_full_body_classes=1, grouping_boxes="pose",
                           return_intermediates=True, **dict(PARAMS, th_persondetect=0.1))
    np.testing.assert_allclose(pose["scores"], [1.2])
    np.testing.assert_allclose(pose["proposals"]["boxes"][0], [0, 5, 55, 195])


def test_empty_input_gives_no_people():
    scores, boxes = np.zeros((0, 3)), np.zeros((0, 4))
    out = integrate_poses(scores, boxes, np.zeros((0, 2, J, 2)), np.zeros((0, 2, J, 3)), IMAGE,
                          num_full_body_classes=1, min_proposals=500, **PARAMS)
    assert out["scores"].shape == (0,) and out["pose2d"].shape == (0, J, 2) and out["pose3d"].shape == (0, J, 3)


def test_zero_score_proposals_weigh_alike_and_make_no_person():
    # min_proposals lowers the threshold to 0: the second RoI's zero-score pairs join as a group of their own.
    scores, boxes, pose2d, pose3d = dense([([0, 0, 100, 200], {1: (0.9, BASE2D, BASE3D)}),
                                           ([300, 0, 400, 200], {1: (0.0, BASE2D + [300, 0], BASE3D),
                                                                 2: (0.0, BASE2D + [310, 0], BASE3D + 0.01)})],
                                          num_classes=2)
    with np.errstate(all="raise"):
        out = integrate_poses(scores, boxes, pose2d, pose3d, IMAGE, num_full_body_classes=2, min_proposals=3,
                              return_intermediates=True, **PARAMS)
    assert len(out["proposals"]["score"]) == 4 and out["proposals"]["score"].min() == 0
    zero_mode = next(modes[0] for modes in out["modes"] if 3 in modes[0]["members"])
    assert zero_mode["score"] == 0 and sorted(zero_mode["members"]) == [2, 3]
    # The plain mean of the two zero-score poses: x shifted by 10 / 2, 3D by 0.01 / 2.
    np.testing.assert_allclose(zero_mode["pose2d"], BASE2D + [305, 0], rtol=1e-12)
    np.testing.assert_allclose(zero_mode["pose3d"], BASE3D + 0.005, rtol=1e-12)
    np.testing.assert_allclose(out["scores"], [0.9], rtol=1e-12)


def test_grouping_iou_counts_detectron_plus_one_pixels():
    # [0, 9] and [5, 14] hold 10 pixels each and share 5 columns: 50 / (100 + 100 - 50); apart: 0; itself: 1.
    boxes = np.array([[5.0, 0, 14, 9], [20, 20, 29, 29], [0, 0, 9, 9]])
    np.testing.assert_allclose(_plus_one_iou(boxes, np.array([0.0, 0, 9, 9])), [1 / 3, 0, 1], rtol=1e-15)


def test_select_proposals_default_threshold_and_release_minimum():
    scores = np.array([[0.94, 0.05, 0.01], [0.68, 0.30, 0.02], [0.91, 0.04, 0.05]], np.float32)
    rois, classes, kept, threshold = select_proposals(scores)
    assert rois.tolist() == [0, 1, 2] and classes.tolist() == [0, 0, 1] and threshold == np.float32(0.05)
    np.testing.assert_array_equal(kept, np.float32([0.05, 0.30, 0.05]))
    # Release: at least min(500, 3 * 2 - 1) = 5 proposals -> threshold the 5th largest score, 0.02.
    rois, classes, _, threshold = select_proposals(scores, min_proposals=500)
    assert list(zip(rois.tolist(), classes.tolist())) == [(0, 0), (1, 0), (1, 1), (2, 0), (2, 1)]
    assert threshold == np.float32(0.02)


def test_default_threshold_is_compared_in_the_scores_dtype():
    # A K whose float32 0.1 / K rounds down: a float32 score equal to it is kept, though below 0.1 / K.
    k = next(k for k in range(2, 100) if float(np.float32(0.1 / k)) < 0.1 / k)
    scores = np.zeros((1, k + 1), np.float32)
    scores[0, 1] = np.float32(0.1 / k)
    assert select_proposals(scores)[0].tolist() == [0]


def test_unknown_iou_func_is_a_clear_error():
    with pytest.raises(ConfigError, match="iou_func 'boxes' is unknown"):
        integrate_poses(*two_people(), IMAGE, num_full_body_classes=1, **dict(PARAMS, iou_func="boxes"))
