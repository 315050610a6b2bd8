"""Multi-person 3D pose metrics (lcrnet.md 6.1) on the Human3.6M sample's poses and hand-made errors."""
import json
from pathlib import Path

import numpy as np
import pytest

from posekit.evaluation.pose3d import Pose3DEvaluator, evaluate_people, procrustes_align
from posekit.utils.errors import ConfigError

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "samples" / "h36m" / "test_h36m_body3d.npz"
H36M_TO_LCR = [3, 6, 2, 5, 1, 4, 16, 13, 15, 12, 14, 11, 10]


@pytest.fixture(scope="module")
def people():
    """The four sample people as LCR-13 joints: 2D pixels (4, 13, 2), 3D camera metres (4, 13, 3)."""
    with np.load(SAMPLE) as sample:
        return sample["part"][:, H36M_TO_LCR, :2], sample["S"][:, H36M_TO_LCR, :3]


def one_per_image(pose2d, pose3d, scores=None):
    scores = np.ones(len(pose2d)) if scores is None else scores
    return [{"pose2d": pose2d[i:i + 1], "pose3d": pose3d[i:i + 1], "scores": scores[i:i + 1]}
            for i in range(len(pose2d))]


def rotation(axis, angle):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def test_ground_truth_against_itself_is_perfect(people):
    pose2d, pose3d = people
    metrics, records = evaluate_people(one_per_image(pose2d, pose3d), one_per_image(pose2d, pose3d))
    assert metrics["MPJPE"] == 0 and metrics["PA-MPJPE"] < 1e-9
    assert metrics["3DPCK"] == metrics["3DPCK_matched"] == metrics["PCK2D"] == 100
    assert (metrics["matched"], metrics["misses"], metrics["false_positives"]) == (4, 0, 0)
    assert all(record["root"] == "pelvis" for record in records)


def test_similarity_transform_vanishes_after_procrustes_but_not_a_mirror(people):
    pose2d, pose3d = people
    moved = 1.3 * pose3d @ rotation([1, 2, 0.5], 0.7).T + [0.2, -0.1, 0.4]
    metrics, _ = evaluate_people(one_per_image(pose2d, moved), one_per_image(pose2d, pose3d))
    assert metrics["PA-MPJPE"] < 1e-9 and metrics["MPJPE"] > 50
    mirrored = pose3d * [-1, 1, 1]
    aligned = procrustes_align(mirrored[0] - mirrored[0].mean(0), pose3d[0] - pose3d[0].mean(0))
    # A rotation cannot undo a mirror: the best proper fit keeps an error, and the result is no reflection.
    assert np.linalg.norm(aligned - (pose3d[0] - pose3d[0].mean(0)), axis=1).mean() > 0.01
    fit = np.linalg.lstsq(mirrored[0] - mirrored[0].mean(0), aligned, rcond=None)[0]
    assert np.linalg.det(fit) > 0


def test_hand_worked_root_relative_errors(people):
    pose2d, pose3d = people
    shifted = pose3d.copy()
    shifted[:, 4] += [0.026, 0, 0]   # right hip 26 mm along x
    # Pelvis root (hips 4, 5) moves 13 mm: every joint is 13 mm off.
    pelvis, _ = evaluate_people(one_per_image(pose2d, shifted), one_per_image(pose2d, pose3d))
    assert pelvis["MPJPE"] == pytest.approx(13.0, abs=1e-9)
    # Torso root (4, 5, 10, 11) moves 6.5 mm: 12 joints 6.5 mm off, the hip 19.5 -> (78 + 19.5) / 13 = 7.5.
    torso, _ = evaluate_people(one_per_image(pose2d, shifted), one_per_image(pose2d, pose3d), root="torso")
    assert torso["MPJPE"] == pytest.approx(7.5, abs=1e-9)
    far = pose3d.copy()
    far[:, 0] += [0.0, 0.16, 0.0]    # right ankle 160 mm off: beyond 3DPCK's 150 mm
    metrics, _ = evaluate_people(one_per_image(pose2d, far), one_per_image(pose2d, pose3d))
    assert metrics["3DPCK"] == pytest.approx(1200 / 13)
    assert metrics["MPJPE"] == pytest.approx(160 / 13)


def test_two_dimensional_pck_uses_the_torso_diameter(people):
    pose2d, pose3d = people
    moved = pose2d.copy()
    torso = np.linalg.norm(pose2d[:, 11] - pose2d[:, 4], axis=1)
    moved[:, 6, 0] += 0.21 * torso   # right wrist just beyond 0.2 torso
    moved[:, 7, 0] += 0.19 * torso   # left wrist just inside
    metrics, _ = evaluate_people(one_per_image(moved, pose3d), one_per_image(pose2d, pose3d))
    assert metrics["PCK2D"] == pytest.approx(1200 / 13)


def test_matching_counts_misses_and_false_positives(people):
    pose2d, pose3d = people
    gt = {"pose2d": np.stack([pose2d[0], pose2d[0] + [400, 0]]), "pose3d": pose3d[[0, 0]], "ids": [11, 12]}
    # The true person A, and a false positive that overlaps neither (far right), scored higher.
    prediction = {"pose2d": np.stack([pose2d[0], pose2d[0] + [900, 0]]), "pose3d": pose3d[[0, 0]],
                  "scores": np.array([0.5, 0.9])}
    metrics, records = evaluate_people([prediction], [gt])
    assert (metrics["people"], metrics["matched"], metrics["misses"], metrics["false_positives"]) == (2, 1, 1, 1)
    assert metrics["3DPCK"] == 50 and metrics["3DPCK_matched"] == 100
    assert [(r["gt_id"], r["matched"]) for r in records] == [(11, True), (12, False), (None, False)]


def test_evaluator_reads_records_and_writes_results(people, tmp_path):
    pose2d, pose3d = people
    poses = np.concatenate([pose2d.transpose(0, 2, 1), pose3d.transpose(0, 2, 1)], axis=1).reshape(4, 65)
    records = [{"image_id": 7 + i, "annotations": [{"id": 70 + i, "pose": poses[i].tolist(), "iscrowd": 0}]}
               for i in range(4)]
    evaluator = Pose3DEvaluator(records, str(tmp_path / "people.json"))
    evaluator.process([{"image_id": 7}, {"image_id": 8}], one_per_image(pose2d[:2], pose3d[:2] + 0.5))
    metrics = evaluator.evaluate()
    assert metrics["MPJPE"] == pytest.approx(0, abs=1e-9) and metrics["people"] == 2
    written = json.loads((tmp_path / "people.json").read_text())
    assert written["root"] == "pelvis" and [p["gt_id"] for p in written["people"]] == [70, 71]


def test_joint_sets_must_agree(people):
    pose2d, pose3d = people
    with pytest.raises(ConfigError, match="image None: predictions have 12 joints, the ground truth 13"):
        evaluate_people(one_per_image(pose2d[:, :12], pose3d[:, :12]), one_per_image(pose2d, pose3d))
