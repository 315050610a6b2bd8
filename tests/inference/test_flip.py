"""Flip test (dekr.md 7.2): the shifted mirror input, channel reordering and pose-map flipping."""
import torch

from posekit.data.metadata import COCO
from posekit.inference.dekr.flip import flip_shifted, forward_with_flip, offset_to_pose


def subsample(x):
    """A stand-in network: output pixel (i, j) sees input pixel (4i, 4j), like DEKR's grid."""
    return x[:, :1, ::4, ::4]


def test_offset_to_pose_subtracts_offsets():
    offset = torch.zeros(1, 4, 3, 5)
    offset[0, 2, 1, 2] = 0.5   # joint 1 dx at pixel x=2, y=1
    offset[0, 3, 1, 2] = -1.0  # joint 1 dy
    pose = offset_to_pose(offset)
    assert pose[0, 2, 1, 2] == 1.5 and pose[0, 3, 1, 2] == 2.0
    assert pose[0, 0, 2, 4] == 4.0 and pose[0, 1, 2, 4] == 2.0


def test_flip_shift_reads_from_an_unmodified_copy():
    image = torch.arange(16.0).view(1, 1, 1, 16)
    shifted = flip_shifted(image)[0, 0, 0]
    assert shifted[:13].tolist() == [12.0 - c for c in range(13)]
    assert shifted[13:].tolist() == [2.0, 1.0, 0.0]


def test_shifted_flip_output_column_v_mirrors_column_w_minus_1_minus_v():
    image = torch.randn(1, 3, 8, 32)
    plain = subsample(image)
    flipped = subsample(flip_shifted(image))
    assert torch.equal(torch.flip(flipped, [3]), plain)


def test_heatmap_channels_are_reordered_with_the_centre_flip_index():
    k = COCO.num_joints
    weights = torch.arange(1.0, k + 2).view(1, k + 1, 1, 1)
    image = torch.randn(1, 3, 16, 24)

    def model(x):
        return subsample(x) * weights, torch.zeros(1, 2 * k, 4, 6)

    heatmap, _ = forward_with_flip(model, image, COCO.flip_index, COCO.flip_index_with_center)
    mirror = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 17]
    expected = subsample(image) * (weights + weights[:, mirror]) / 2
    torch.testing.assert_close(heatmap, expected)


def test_posemap_flip_by_hand():
    k = COCO.num_joints
    dx = torch.arange(k, dtype=torch.float32) * 0.5
    dy = torch.arange(k, dtype=torch.float32) * -0.25
    offset = torch.stack((dx, dy), dim=1).reshape(1, 2 * k, 1, 1).expand(1, 2 * k, 4, 6).contiguous()

    def model(x):
        return torch.zeros(1, k + 1, 4, 6), offset

    _, posemap = forward_with_flip(model, torch.zeros(1, 3, 16, 24), COCO.flip_index, COCO.flip_index_with_center)
    mirror = torch.tensor(COCO.flip_index)
    xs = torch.arange(6.0).view(1, 1, 6)
    ys = torch.arange(4.0).view(1, 4, 1)
    # Hand-derived: x = x + (dx[mirror] - dx) / 2, y = y - (dy + dy[mirror]) / 2.
    expected_x = xs + ((dx[mirror] - dx) / 2).view(k, 1, 1)
    expected_y = ys - ((dy + dy[mirror]) / 2).view(k, 1, 1)
    torch.testing.assert_close(posemap[0, 0::2], expected_x.expand(k, 4, 6))
    torch.testing.assert_close(posemap[0, 1::2], expected_y.expand(k, 4, 6))


def test_without_flip_test_the_model_runs_once():
    calls = []

    def model(x):
        calls.append(x)
        return torch.zeros(1, 18, 2, 2), torch.zeros(1, 34, 2, 2)

    forward_with_flip(model, torch.zeros(1, 3, 8, 8), COCO.flip_index, COCO.flip_index_with_center, flip_test=False)
    assert len(calls) == 1
