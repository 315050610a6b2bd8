"""LCR-Net codec: 5J layout, normalisation, class assignment, targets, decoding and flip (lcrnet.md 1-3, 9)."""
import numpy as np
import pytest
import torch

from posekit.models.lcrnet import codec
from posekit.utils.errors import ConfigError, DataError

J, K = 13, 6


def random_case(seed: int, rois: int = 7):
    """Random float64 boxes, anchors, GT poses in pixels."""
    rng = np.random.default_rng(seed)
    x1y1 = rng.uniform(0, 300, (rois, 2))
    boxes = np.concatenate([x1y1, x1y1 + rng.uniform(20, 200, (rois, 2))], axis=1)
    anchors = rng.normal(0, 0.5, (K, 5 * J))
    poses = rng.normal(200, 80, (rois, 5 * J))
    poses[:, 2 * J:] = rng.normal(0, 0.4, (rois, 3 * J))
    return boxes, anchors, poses


def official_decode(boxes, deltas, anchors):
    """The release's decode written out joint by joint in float64 (lcrnet.md 3.8)."""
    rois, num_classes, joints = len(boxes), len(anchors), anchors.shape[1] // 5
    pose2d = np.zeros((rois, num_classes, joints, 2))
    pose3d = np.zeros((rois, num_classes, joints, 3))
    for r in range(rois):
        x1, y1, x2, y2 = boxes[r]
        for k in range(num_classes):
            slot = deltas[r, 5 * joints * (k + 1):5 * joints * (k + 2)] + anchors[k]
            for j in range(joints):
                pose2d[r, k, j] = (x1 + slot[j] * (x2 - x1), y1 + slot[joints + j] * (y2 - y1))
                pose3d[r, k, j] = slot[2 * joints + j::joints][:3]
    return pose2d, pose3d


def release_order_decode(boxes, deltas, anchors):
    """The release's vectorised decode (detect_pose.py): offset + tiled anchor * scale + scale * delta."""
    joints, num_classes = anchors.shape[1] // 5, len(anchors)
    sides = boxes[:, 2:] - boxes[:, :2]
    offset = np.concatenate([boxes[:, :2], np.zeros((len(boxes), 3))], axis=1)
    scale = np.concatenate([sides, np.ones((len(boxes), 3))], axis=1)
    offsets = np.tile(np.repeat(offset, joints, axis=1), (1, num_classes))
    scales = np.tile(np.repeat(scale, joints, axis=1), (1, num_classes))
    poses = offsets + np.tile(anchors.reshape(1, -1), (len(boxes), 1)) * scales
    poses += scales * deltas[:, joints * 5:]
    return poses.reshape(len(boxes), num_classes, 5, joints).transpose(0, 1, 3, 2)[..., :2]


def test_layout_slices():
    pose = torch.arange(5 * J, dtype=torch.float64)
    pose2d, pose3d = codec.split_poses(pose[None])
    assert pose2d[0, 3].tolist() == [3, 13 + 3]
    assert pose3d[0, 12].tolist() == [26 + 12, 39 + 12, 52 + 12]
    assert torch.equal(codec.join_poses(pose2d, pose3d)[0], pose)
    # No rows (an image without people): shapes still follow J, the flip and the 2D scaling included.
    none = codec.join_poses(torch.zeros(0, J, 2), torch.zeros(0, J, 3))
    assert none.shape == (0, 5 * J)
    assert codec.flip_poses(none, image_width=100).shape == (0, 5 * J)


def test_decode_matches_official_and_keeps_float64():
    boxes, anchors, _ = random_case(0)
    deltas = np.random.default_rng(1).normal(0, 0.1, (len(boxes), 5 * J * (K + 1)))
    pose2d, pose3d = codec.decode_poses(boxes, deltas, anchors)
    want2d, want3d = official_decode(boxes, deltas, anchors)
    assert isinstance(pose2d, np.ndarray) and pose2d.dtype == np.float64 and pose3d.dtype == np.float64
    assert pose2d.shape == (len(boxes), K, J, 2) and pose3d.shape == (len(boxes), K, J, 3)
    np.testing.assert_allclose(pose2d, want2d, rtol=0, atol=1e-9)
    # The same float operations in the same order as the release: equal bit for bit.
    assert np.array_equal(pose2d, release_order_decode(boxes, deltas, anchors))
    np.testing.assert_allclose(pose3d, want3d, rtol=0, atol=1e-12)
    tensor2d, _ = codec.decode_poses(torch.from_numpy(boxes), torch.from_numpy(deltas), torch.from_numpy(anchors))
    assert tensor2d.dtype == torch.float64 and torch.allclose(tensor2d, torch.from_numpy(want2d), atol=1e-9)


def test_round_trip_encode_then_decode_returns_gt():
    boxes, anchors, poses = random_case(2)
    boxes_t, anchors_t, poses_t = map(torch.from_numpy, (boxes, anchors, poses))
    classes = codec.assign_classes(poses_t, boxes_t, anchors_t)
    targets = codec.encode_targets(poses_t, boxes_t, classes, anchors_t)
    # Each RoI's targets in its class's slot (slot 0 background), the layout of lcrnet.md 3.6.
    deltas = torch.zeros(len(boxes), K + 1, 5 * J, dtype=torch.float64)
    deltas[torch.arange(len(boxes)), classes] = targets
    deltas = deltas.reshape(len(boxes), -1)
    pose2d, pose3d = codec.decode_poses(boxes_t, deltas, anchors_t)
    rows = torch.arange(len(boxes))
    decoded = codec.join_poses(pose2d[rows, classes - 1], pose3d[rows, classes - 1])
    # Pixels pass through a division and a multiplication by the box side: exact to float64 rounding.
    assert torch.allclose(decoded, poses_t, rtol=1e-14, atol=1e-12)


def test_class_assignment_matches_brute_force():
    boxes, anchors, poses = random_case(3, rois=40)
    anchors[:, 2 * J:] = poses[:K, 2 * J:]  # 3D close to some GT so the 2D term decides between classes
    classes = codec.assign_classes(*map(torch.from_numpy, (poses, boxes, anchors)))
    for r in range(len(boxes)):
        x1, y1, x2, y2 = boxes[r]
        normalized = poses[r].copy()
        normalized[:J] = (poses[r, :J] - x1) / (x2 - x1)
        normalized[J:2 * J] = (poses[r, J:2 * J] - y1) / (y2 - y1)
        distances = [np.sqrt(((normalized - anchor) ** 2).sum()) for anchor in anchors]
        assert classes[r].item() == int(np.argmin(distances)) + 1


def test_flip_mirrors_swaps_sides_and_stays_torso_centred():
    pose2d = torch.zeros(1, J, 2, dtype=torch.float64)
    pose3d = torch.zeros(1, J, 3, dtype=torch.float64)
    pose2d[0, 6] = torch.tensor([10.0, 50.0])   # right wrist at x = 10
    pose2d[0, 7] = torch.tensor([70.0, 55.0])   # left wrist at x = 70
    pose3d[0, 10] = torch.tensor([0.2, 0.3, 0.1], dtype=torch.float64)   # right shoulder, X toward the image's left
    pose3d[0, 11] = torch.tensor([-0.2, 0.3, -0.1], dtype=torch.float64)
    flipped = codec.flip_poses(codec.join_poses(pose2d, pose3d), image_width=100)
    f2d, f3d = codec.split_poses(flipped)
    # The new right wrist is the old left one mirrored: x = 100 - 70.
    assert f2d[0, 6].tolist() == [30.0, 55.0] and f2d[0, 7].tolist() == [90.0, 50.0]
    assert f3d[0, 10].tolist() == [0.2, 0.3, -0.1] and f3d[0, 11].tolist() == [-0.2, 0.3, 0.1]
    torso = [4, 5, 10, 11]
    assert torch.allclose(f3d[:, torso].mean(dim=1), pose3d[:, torso].mean(dim=1))
    legacy = codec.split_poses(codec.flip_poses(codec.join_poses(pose2d, pose3d), 100, legacy_plus_one=True))[0]
    assert legacy[0, 6, 0].item() == 29.0
    twice = codec.flip_poses(flipped, image_width=100)
    assert torch.equal(twice, codec.join_poses(pose2d, pose3d))


def test_joint_sets():
    assert codec.joint_set(13).flip_index == [1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 12]
    assert codec.joint_set(17).flip_index[13:] == [13, 14, 15, 16]
    assert codec.joint_set(17).joint_names[12:] == ("head", "pelvis", "spine", "thorax", "neck")
    with pytest.raises(ConfigError, match="13 or 17"):
        codec.joint_set(14)


def test_bad_sizes_raise_clear_errors():
    with pytest.raises(DataError, match="annotation 7.*5J numbers.*got 64"):
        codec.num_joints_of(64, "annotation 7")
    boxes, anchors, _ = random_case(4)
    with pytest.raises(ConfigError, match="background slot"):
        codec.decode_poses(boxes, np.zeros((len(boxes), 5 * J * K)), anchors)
