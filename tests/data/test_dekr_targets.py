"""DEKR targets against hand-worked examples (dekr.md 6.2, 6.4, 6.5 with the posekit fixes)."""
import math

import numpy as np
import pytest

from posekit.data.targets.dekr import (heatmap_targets, labelled_extent_areas, loss_mask, offset_targets,
                                       person_centres)

R = 32


def persons(*rows):
    """Joints array (P, K+1, 3) from per-person lists of (x, y, v) rows, centre last."""
    return np.array(rows, dtype=np.float64)


def test_heatmap_window_values_and_weights():
    joints = persons([(10.5, 12.25, 2), (0, 0, 0)])
    heat, weight = heatmap_targets(joints, R, sigma=2.0, center_sigma=4.0, bg_weight=0.1)
    # Window columns floor(10.5 - 7) = 3 .. ceil(10.5 + 8) = 19 (exclusive); rows floor(5.25) = 5 .. 21.
    assert heat[0, 12, 10] == pytest.approx(math.exp(-(0.25 + 0.0625) / 8), rel=1e-6)
    assert heat[0, 12, 18] == pytest.approx(math.exp(-(7.5 ** 2 + 0.25 ** 2) / 8), rel=1e-5)
    assert heat[0, 12, 19] == 0 and heat[0, 12, 2] == 0 and heat[0, 4, 10] == 0
    assert heat[0, 5, 3] > 0 and heat[0, 20, 18] > 0
    assert weight[0, 12, 3] == 1 and weight[0, 12, 18] == 1
    assert weight[0, 12, 19] == pytest.approx(0.1) and weight[0, 4, 10] == pytest.approx(0.1)
    assert (weight[0] == 1).sum() == 16 * 16
    # Nothing labelled in the centre channel: zero target, background weight everywhere.
    assert heat[1].max() == 0 and np.allclose(weight[1], 0.1)


def test_heatmaps_of_two_people_combine_by_maximum():
    joints = persons([(10, 10, 2), (0, 0, 0)], [(12, 10, 1), (0, 0, 0)])
    heat, _ = heatmap_targets(joints, R, 2.0, 4.0, 0.1)
    assert heat[0, 10, 11] == pytest.approx(math.exp(-1 / 8), rel=1e-6)
    assert heat[0, 10, 10] == 1 and heat[0, 10, 12] == 1


@pytest.mark.parametrize("num_joints", [14, 17, 25])
def test_sigma_follows_the_channel_for_any_joint_count(num_joints):
    rows = [(0, 0, 0)] * (num_joints + 1)
    rows[num_joints - 1] = (16, 16, 2)  # last keypoint channel
    rows[num_joints] = (16, 16, 1)      # centre channel
    heat, weight = heatmap_targets(persons(rows), R, 2.0, 4.0, 0.1)
    assert heat[num_joints - 1, 16, 19] == pytest.approx(math.exp(-9 / 8), rel=1e-6)
    assert heat[num_joints, 16, 19] == pytest.approx(math.exp(-9 / 32), rel=1e-6)
    # Centre window: floor(16 - 13) = 3 .. ceil(16 + 14) = 30.
    assert weight[num_joints, 16, 3] == 1 and weight[num_joints, 16, 2] == pytest.approx(0.1)


def test_offsets_of_one_person_fill_the_asymmetric_square():
    joints = persons([(10.5, 12.25, 2), (0, 0, 0), (20.7, 15.2, 1)])
    offset, weight = offset_targets(joints, np.array([400.0]), R, radius=4)
    # Centre pixel (20, 15): columns 16..23, rows 11..18.
    assert offset[0, 11, 16] == pytest.approx(16 - 10.5) and offset[1, 11, 16] == pytest.approx(11 - 12.25)
    assert offset[0, 18, 23] == pytest.approx(23 - 10.5) and offset[1, 18, 23] == pytest.approx(18 - 12.25)
    assert (weight[0] > 0).sum() == 64 and (weight[1] > 0).sum() == 64
    assert weight[0, 15, 20] == pytest.approx(1 / 20) and weight[0, 15, 24] == 0 and weight[0, 10, 20] == 0
    assert not weight[2:].any() and not offset[2:].any()


@pytest.mark.parametrize("small_first", [False, True])
def test_overlapping_squares_go_to_the_smaller_person(small_first):
    large = [(5.0, 15.0, 2), (20.0, 15.0, 1)]   # centre (20, 15): columns 16..23
    small = [(30.0, 14.0, 2), (22.0, 15.0, 1)]  # centre (22, 15): columns 18..25
    areas = [900.0, 100.0]
    order = [1, 0] if small_first else [0, 1]
    offset, weight = offset_targets(persons(large, small)[order], np.array(areas)[order], R, 4)
    assert offset[0, 15, 20] == pytest.approx(20 - 30.0) and weight[0, 15, 20] == pytest.approx(0.1)
    assert offset[0, 15, 17] == pytest.approx(17 - 5.0) and weight[0, 15, 17] == pytest.approx(1 / 30)
    assert offset[0, 15, 25] == pytest.approx(25 - 30.0)
    assert (weight[0] == np.float32(0.1)).sum() == 64 and (weight[0] == np.float32(1 / 30)).sum() == 16


def test_person_partly_outside_the_output():
    joints = persons([(40.0, 5.0, 2), (30.5, 3.0, 2), (31.6, 2.5, 1)])
    heat, heat_weight = heatmap_targets(joints, R, 2.0, 4.0, 0.1)
    offset, weight = offset_targets(joints, np.array([100.0]), R, 4)
    assert heat[0].max() == 0 and np.allclose(heat_weight[0], 0.1)
    # Joint 1 window: columns 23..31 (clipped at 32), rows 0..10 (clipped at 0).
    assert (heat_weight[1] == 1).sum() == 9 * 11
    assert not weight[:2].any()
    # Centre (31, 2): columns 27..31, rows 0..5.
    assert (weight[2] > 0).sum() == 5 * 6 and offset[2, 0, 27] == pytest.approx(27 - 30.5)


def test_centre_just_left_of_the_map_is_truncated_into_column_zero():
    joints = persons([(1.0, 5.0, 2), (-0.5, 5.0, 1)])
    _, weight = offset_targets(joints, np.array([100.0]), R, 4)
    assert (weight[0] > 0).sum() == 4 * 8 and weight[0, 5, 3] > 0 and weight[0, 5, 4] == 0


def test_person_without_labelled_joints_has_no_centre():
    keypoints = np.array([[[0, 0, 0], [0, 0, 0]], [[20, 22, 2], [24, 26, 1]]], dtype=np.float64)
    centres = person_centres(keypoints, np.array([True, True]))
    assert centres.tolist() == [[0, 0, 0], [22, 24, 1]]
    joints = np.concatenate([keypoints, centres[:, None]], axis=1)
    heat, _ = heatmap_targets(joints, R, 2.0, 4.0, 0.1)
    # The official code would put a centre peak at the origin for the first person.
    assert heat[2, 0, 0] == 0 and heat[2, 24, 22] == 1


def test_centre_not_allowed_for_small_persons():
    keypoints = np.array([[[4, 6, 2], [8, 10, 1]]], dtype=np.float64)
    assert person_centres(keypoints, np.array([False])).tolist() == [[0, 0, 0]]


def test_area_is_the_squared_diagonal_of_the_labelled_joints():
    keypoints = np.array([[[300, 200, 2], [340, 302, 1], [0, 0, 0]],
                          [[50, 60, 2], [0, 0, 0], [0, 0, 0]]], dtype=np.float64)
    # 40^2 + 102^2 = 12004 (official: 340^2 + 302^2 = 206804); one joint -> the 32^2 floor.
    assert labelled_extent_areas(keypoints).tolist() == [12004.0, 1024.0]


def test_loss_mask_covers_crowd_rle_and_unlabelled_segments():
    height, width = 6, 8
    # Column-major uncompressed RLE: 7 background pixels, 3 crowd pixels (column 1, rows 1..3), rest background.
    crowd = {"iscrowd": 1, "num_keypoints": 0, "segmentation": {"size": [height, width], "counts": [7, 3, 38]}}
    unlabelled = {"iscrowd": 0, "num_keypoints": 0, "segmentation": [[4, 0, 7, 0, 7, 5, 4, 5]]}
    labelled = {"iscrowd": 0, "num_keypoints": 3, "segmentation": [[0, 0, 7, 0, 7, 5, 0, 5]]}
    valid = loss_mask([crowd, unlabelled, labelled], height, width, "test.json")
    assert not valid[1:4, 1].any() and valid[0, 1] and valid[4, 1]
    assert not valid[2, 5:7].any() and valid[2, 0] and valid[2, 2]
