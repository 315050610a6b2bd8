"""Flip tables of every registered keypoint set, and the DeepFashion2 category-1 facts."""
import pytest

from posekit.config import get_cfg
from posekit.data.metadata import get_keypoint_set, keypoint_set_from_cfg

SETS = ["coco", "crowdpose", "deepfashion2_cat1"]


@pytest.mark.parametrize("name", SETS)
def test_flip_index_is_an_involution(name):
    keypoint_set = get_keypoint_set(name)
    index = keypoint_set.flip_index_with_center
    assert sorted(index) == list(range(keypoint_set.num_joints + 1))
    assert [index[i] for i in index] == list(range(len(index)))
    assert index[-1] == keypoint_set.num_joints


@pytest.mark.parametrize("name", ["coco", "crowdpose"])
def test_left_and_right_names_swap(name):
    keypoint_set = get_keypoint_set(name)
    names = keypoint_set.joint_names
    for joint, mirror in enumerate(keypoint_set.flip_index):
        swapped = names[joint].replace("left", "RIGHT").replace("right", "left").replace("RIGHT", "right")
        assert names[mirror] == swapped


def test_official_flip_tables():
    # COCO_WITH_CENTER and CROWDPOSE_WITH_CENTER of the official code (dekr.md 6.3).
    assert get_keypoint_set("coco").flip_index_with_center == [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13,
                                                               16, 15, 17]
    assert get_keypoint_set("crowdpose").flip_index_with_center == [1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 12,
                                                                    13, 14]


@pytest.mark.parametrize("name", SETS)
def test_mirrored_joints_share_their_sigma(name):
    keypoint_set = get_keypoint_set(name)
    assert all(keypoint_set.sigmas[j] == keypoint_set.sigmas[m] for j, m in enumerate(keypoint_set.flip_index))


def test_deepfashion2_category1():
    short_sleeve_top = get_keypoint_set("deepfashion2_cat1")
    assert short_sleeve_top.num_joints == 25
    # Landmark 1 (collar centre), 4 (front neckline) and 16 (hem centre) lie on the symmetry axis.
    assert [j + 1 for j, m in enumerate(short_sleeve_top.flip_index) if j == m] == [1, 4, 16]
    assert short_sleeve_top.flip_index[6] == 24  # landmark 7 <-> 25
    assert short_sleeve_top.sigmas[0] == 0.012 and short_sleeve_top.sigmas[13] == 0.0574
    # Outline plus neckline: two links per landmark, three at the neckline ends 2 and 6.
    degree = [0] * 25
    for a, b in short_sleeve_top.skeleton:
        degree[a] += 1
        degree[b] += 1
    assert degree.count(2) == 23 and degree[1] == degree[5] == 3


def test_config_selects_the_deepfashion2_set_by_data_set_name():
    cfg = get_cfg()
    cfg.DATASET.DATASET = "deepfashion2_cat1"
    cfg.DATASET.NUM_JOINTS = 25
    assert keypoint_set_from_cfg(cfg).name == "deepfashion2_cat1"
