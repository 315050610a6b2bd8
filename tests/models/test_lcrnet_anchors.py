"""LCR-Net anchor sets: the released files, bad files, saving, K-means and upper-body twins (lcrnet.md 2)."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from posekit.models.lcrnet import anchors as lcr_anchors
from posekit.utils.errors import ConfigError

DATA = Path(__file__).resolve().parents[2] / "data" / "lcrnet"
RELEASED = DATA / "InTheWild-ResNet50_anchors.npz"
J = 13


def test_released_set_from_npz_equals_json_and_reads_k_from_the_data():
    from_npz = lcr_anchors.load_anchors(RELEASED, num_joints=J)
    from_json = lcr_anchors.load_anchors(RELEASED.with_suffix(".json"))
    meta = json.loads(RELEASED.with_suffix(".json").read_text())
    assert from_npz.poses.dtype == np.float32 and from_npz.poses.shape == tuple(meta["arrays"]["anchor_poses"]["shape"])
    assert np.array_equal(from_npz.poses, from_json.poses)
    assert from_npz.ppi_params == meta["ppi_params"] == from_json.ppi_params
    # 20 classes, 10 of them full-body: the release's demos passed K = 20 and lost the down-weighting (4.4).
    assert (from_npz.num_classes, from_npz.num_joints, from_npz.num_full_body) == (20, J, 10)
    assert from_npz.ppi_kwargs() == {"num_full_body_classes": 10, "th_pose3d": 0.04, "th_iou": 0.14,
                                     "iou_func": "bbox_torsohead", "min_mode_score": 0.05, "th_persondetect": 0.5}
    # Torso-centred 3D (lcrnet.md 1.4): hips 4, 5 and shoulders 10, 11.
    torso = from_npz.poses.astype(np.float64)[:, 2 * J:].reshape(20, 3, J)[:, :, [4, 5, 10, 11]].mean(axis=2)
    assert np.abs(torso).max() < 1e-6


def test_demo_set_has_its_own_ppi_params():
    demo = lcr_anchors.load_anchors(DATA / "DEMO_ECCV18_anchors.npz")
    assert demo.ppi_params["iou_func"] == "shoulderhead" and demo.ppi_params["th_pose3D"] == 0.3


def test_wrong_joint_count_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"InTheWild-ResNet50_anchors.npz: anchor poses have 13 joints.*expects 17"):
        lcr_anchors.load_anchors(RELEASED, num_joints=17)
    bad = tmp_path / "bad_anchors.npz"
    np.savez(bad, anchor_poses=np.zeros((4, 64), np.float32))
    with pytest.raises(ConfigError, match=r"bad_anchors.npz: 'anchor_poses' must be a \(K, 5J\) array"):
        lcr_anchors.load_anchors(bad)


def test_sidecar_that_disagrees_is_refused(tmp_path):
    for path in DATA.glob("InTheWild-ResNet50_anchors.*"):
        shutil.copy(path, tmp_path / path.name)
    sidecar = tmp_path / "InTheWild-ResNet50_anchors.json"
    meta = json.loads(sidecar.read_text())
    meta["arrays"]["anchor_poses"]["shape"] = [20, 85]
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match=r"anchors.json: describes anchor_poses float32 \[20, 85\]"):
        lcr_anchors.load_anchors(tmp_path / "InTheWild-ResNet50_anchors.npz")


def test_save_then_load_round_trip(tmp_path):
    released = lcr_anchors.load_anchors(RELEASED)
    lcr_anchors.save_anchors(released, tmp_path / "copy_anchors.npz")
    again = lcr_anchors.load_anchors(tmp_path / "copy_anchors.json")
    assert np.array_equal(again.poses, released.poses)
    assert again.ppi_params == released.ppi_params and again.num_full_body == 10


def test_full_body_count_without_twins_is_k():
    poses = np.random.default_rng(0).normal(size=(6, 5 * J)).astype(np.float32)
    assert lcr_anchors.count_full_body(poses) == 6


def test_kmeans_recovers_separated_clusters():
    rng = np.random.default_rng(1)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    labels = np.repeat(np.arange(3), 30)
    points = centres[labels] + rng.normal(0, 0.3, (90, 2))
    means = lcr_anchors.kmeans(points, 3, seed=0)
    order = [int(np.argmin(((means - centre) ** 2).sum(axis=1))) for centre in centres]
    assert sorted(order) == [0, 1, 2]
    for cluster, row in enumerate(order):
        np.testing.assert_allclose(means[row], points[labels == cluster].mean(axis=0), rtol=0, atol=1e-12)


def test_upper_body_twin_frames_the_upper_joints_with_the_margin():
    full = lcr_anchors.load_anchors(RELEASED).poses[:10].astype(np.float64)
    twins = lcr_anchors.upper_body_twins(full, margin=0.1)
    assert np.array_equal(twins[:, 2 * J:], full[:, 2 * J:])
    upper = list(range(4, J))
    # Bounds of width s enlarged by 0.1 s per side: the joints span [0.1 / 1.2, 1.1 / 1.2] of the new box.
    for axis in (0, 1):
        coords = twins[:, axis * J:(axis + 1) * J][:, upper]
        np.testing.assert_allclose(coords.min(axis=1), 0.1 / 1.2, atol=1e-12)
        np.testing.assert_allclose(coords.max(axis=1), 1.1 / 1.2, atol=1e-12)
    # Legs of an upright anchor fall below its upper-body box.
    assert (twins[:, J:J + 4].max(axis=1) > 1.0).sum() >= 8


def test_build_anchors_from_poses_gives_twins_and_k_full():
    released = lcr_anchors.load_anchors(RELEASED).poses[:3].astype(np.float64)
    rng = np.random.default_rng(2)
    boxes = np.tile([100.0, 50.0, 300.0, 450.0], (60, 1))
    normalized = released[np.repeat(np.arange(3), 20)] + rng.normal(0, 0.01, (60, 5 * J))
    poses = normalized.copy()
    poses[:, :J] = 100 + normalized[:, :J] * 200
    poses[:, J:2 * J] = 50 + normalized[:, J:2 * J] * 400
    built = lcr_anchors.build_anchors(poses, boxes, num_full_body=3, seed=0)
    assert built.poses.shape == (6, 5 * J) and built.num_full_body == 3
    assert lcr_anchors.count_full_body(built.poses) == 3
    for anchor in released:
        assert np.abs(built.poses[:3] - anchor).max(axis=1).min() < 0.02
