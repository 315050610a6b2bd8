"""nms, batched_nms and oks_nms: hand-made keep lists and brute-force Python references."""
import math

import pytest
import torch

from posekit.ops import batched_nms, nms, oks_nms


def python_iou(a, b):
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def python_oks(kept, other, area, sigmas):
    terms = [math.exp(-((kx - ox) ** 2 + (ky - oy) ** 2) / (2 * s) ** 2 / (area + 2.220446049250313e-16) / 2)
             for (kx, ky, _), (ox, oy, _), s in zip(kept, other, sigmas)]
    return sum(terms) / len(terms)


def python_greedy(scores, exceeds):
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    keep = []
    for i in order:
        if all(not exceeds(k, i) for k in keep):
            keep.append(i)
    return keep


def random_boxes(generator, count, dtype=torch.float32):
    corner = torch.rand(count, 2, generator=generator, dtype=dtype) * 20
    return torch.cat([corner, corner + 1 + torch.rand(count, 2, generator=generator, dtype=dtype) * 10], dim=1)


def test_hand_made_keep_list():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10.0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    assert nms(boxes, scores, 0.5).tolist() == [3, 2]
    # IoU(0, 1) = 81 / 119 = 0.68: with a higher threshold box 1 survives
    assert nms(boxes, scores, 0.7).tolist() == [3, 1, 2]


def test_suppressed_boxes_do_not_suppress():
    boxes = torch.tensor([[0, 0, 10, 1], [4, 0, 14, 1], [8, 0, 18, 1.0]])  # IoU(0,1) = IoU(1,2) = 0.43
    assert nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.4).tolist() == [0, 2]


def test_equal_scores_keep_index_order():
    boxes = torch.tensor([[0, 0, 1, 1], [5, 5, 6, 6], [0, 0, 1, 1.0], [5, 5, 6, 6]])
    assert nms(boxes, torch.full((4,), 0.5), 0.5).tolist() == [0, 1]


def test_iou_exactly_at_threshold_is_kept():
    boxes = torch.tensor([[0, 0, 4, 1], [0, 0, 2, 1.0]])  # IoU exactly 0.5
    scores = torch.tensor([0.6, 0.9])
    assert nms(boxes, scores, 0.5).tolist() == [1, 0]
    assert nms(boxes, scores, 0.4999).tolist() == [1]


def test_empty_inputs():
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).dtype == torch.long
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).numel() == 0
    assert batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5).numel() == 0
    assert oks_nms(torch.zeros(0, 17, 3), torch.zeros(0), torch.zeros(0), torch.ones(17), 0.9).numel() == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_random_boxes_match_brute_force(dtype):
    generator = torch.Generator().manual_seed(7)
    boxes = random_boxes(generator, 120, dtype)
    scores = torch.rand(120, generator=generator, dtype=dtype)
    listed = boxes.tolist()
    expected = python_greedy(scores.tolist(), lambda k, i: python_iou(listed[k], listed[i]) > 0.3)
    assert nms(boxes, scores, 0.3).tolist() == expected
    # A strided view of the same boxes gives the same answer.
    strided = torch.stack([boxes, boxes], dim=-1)[..., 1]
    assert nms(strided, scores, 0.3).tolist() == expected


def test_batched_nms_suppresses_within_categories_only():
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10.0]])
    scores = torch.tensor([0.5, 0.9, 0.7])
    assert batched_nms(boxes, scores, torch.tensor([0, 1, 0]), 0.5).tolist() == [1, 2]
    generator = torch.Generator().manual_seed(8)
    boxes = random_boxes(generator, 90)
    scores = torch.rand(90, generator=generator)
    categories = torch.randint(0, 4, (90,), generator=generator)
    listed, labels = boxes.tolist(), categories.tolist()
    expected = python_greedy(
        scores.tolist(), lambda k, i: labels[k] == labels[i] and python_iou(listed[k], listed[i]) > 0.4)
    assert batched_nms(boxes, scores, categories, 0.4).tolist() == expected


def test_oks_nms_hand_made():
    sigmas = torch.tensor([0.5, 0.5])  # (2 sigma)^2 = 1
    pose = torch.tensor([[0.0, 0.0, 2.0], [10.0, 0.0, 2.0]])
    keypoints = torch.stack([pose, pose + torch.tensor([1.0, 0.0, 0.0]), pose + 50])
    areas = torch.tensor([100.0, 100.0, 100.0])
    # OKS(0, 1) = exp(-1 / 100 / 2) = 0.995
    assert oks_nms(keypoints, torch.tensor([0.9, 0.8, 0.7]), areas, sigmas, 0.99).tolist() == [0, 2]
    assert oks_nms(keypoints, torch.tensor([0.9, 0.8, 0.7]), areas, sigmas, 0.996).tolist() == [0, 1, 2]


def test_oks_nms_scales_by_the_kept_pose_area():
    sigmas = torch.tensor([0.5])
    keypoints = torch.tensor([[[0.0, 0.0, 1.0]], [[3.0, 0.0, 0.0]]])  # d^2 = 9; invisible joints count too
    areas = torch.tensor([1.0, 10000.0])
    # small kept area: OKS = exp(-4.5) = 0.011, both kept; large kept area: OKS = exp(-0.00045), suppressed
    assert oks_nms(keypoints, torch.tensor([0.9, 0.1]), areas, sigmas, 0.5).tolist() == [0, 1]
    assert oks_nms(keypoints, torch.tensor([0.1, 0.9]), areas, sigmas, 0.5).tolist() == [1]


def test_oks_nms_random_matches_brute_force():
    generator = torch.Generator().manual_seed(9)
    centres = torch.rand(60, 1, 2, generator=generator) * 30
    keypoints = torch.cat([centres + torch.randn(60, 17, 2, generator=generator) * 4,
                           torch.rand(60, 17, 1, generator=generator)], dim=2)
    scores = torch.rand(60, generator=generator)
    areas = torch.rand(60, generator=generator) * 4000 + 1000
    sigmas = torch.rand(17, generator=generator) * 0.1 + 0.025
    poses, area_list, sigma_list = keypoints.tolist(), areas.tolist(), sigmas.tolist()
    expected = python_greedy(
        scores.tolist(), lambda k, i: python_oks(poses[k], poses[i], area_list[k], sigma_list) > 0.3)
    assert 1 < len(expected) < 60
    assert oks_nms(keypoints, scores, areas, sigmas, 0.3).tolist() == expected


@pytest.mark.parametrize("call, error, words", [
    (lambda: nms(torch.zeros(3, 5), torch.zeros(3), 0.5), ValueError, "boxes must have shape [N, 4]"),
    (lambda: nms(torch.zeros(3, 4), torch.zeros(2), 0.5), ValueError, "scores must have shape [N] = (3,)"),
    (lambda: nms(torch.zeros(3, 4), torch.zeros(3, dtype=torch.float64), 0.5), TypeError,
     "scores must have the dtype of boxes"),
    (lambda: nms(torch.zeros(3, 4, dtype=torch.int32), torch.zeros(3), 0.5), TypeError, "boxes must have dtype"),
    (lambda: batched_nms(torch.zeros(3, 4), torch.zeros(3), torch.zeros(2, dtype=torch.long), 0.5), ValueError,
     "idxs must have shape [N] = (3,)"),
    (lambda: batched_nms(torch.zeros(3, 4), torch.zeros(3), torch.zeros(3), 0.5), TypeError, "integer category"),
    (lambda: oks_nms(torch.zeros(3, 17, 2), torch.zeros(3), torch.zeros(3), torch.ones(17), 0.5), ValueError,
     "keypoints must have shape [N, K, 3]"),
    (lambda: oks_nms(torch.zeros(3, 17, 3), torch.zeros(3), torch.zeros(4), torch.ones(17), 0.5), ValueError,
     "areas must have shape [N] = (3,)"),
    (lambda: oks_nms(torch.zeros(3, 17, 3), torch.zeros(3), torch.zeros(3), torch.ones(14), 0.5), ValueError,
     "sigmas must have shape [K] = (17,)"),
])
def test_bad_arguments_are_named(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)
