"""Box functions in detectron2's convention and Detectron v1's "+1" convention, on hand-worked boxes."""
import itertools

import pytest
import torch

from posekit.structures.boxes import (box_area, box_sides, clip_boxes, half_open, inside_image, nonempty,
                                      pairwise_iou)


def boxes(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def reference_iou(a, b, plus_one):
    """IoU of two boxes in float64 by the textbook formula, pixels counted inclusively when ``plus_one``."""
    extra = 1.0 if plus_one else 0.0
    iw = min(a[2], b[2]) - max(a[0], b[0]) + extra
    ih = min(a[3], b[3]) - max(a[1], b[1]) + extra
    if iw <= 0 or ih <= 0:
        return 0.0
    area_a = (a[2] - a[0] + extra) * (a[3] - a[1] + extra)
    area_b = (b[2] - b[0] + extra) * (b[3] - b[1] + extra)
    return iw * ih / (area_a + area_b - iw * ih)


def test_area_and_sides_in_both_conventions():
    b = boxes([0, 0, 10, 20], [5, 5, 5, 8])
    assert box_area(b).tolist() == [200.0, 0.0]
    # Detectron counts pixels: 11 x 21, and a zero-width box is one pixel column.
    assert box_area(b, legacy_plus_one=True).tolist() == [231.0, 4.0]
    widths, heights = box_sides(b, legacy_plus_one=True)
    assert widths.tolist() == [11.0, 1.0] and heights.tolist() == [21.0, 4.0]


def test_pairwise_iou_hand_worked():
    a = boxes([0, 0, 10, 10], [3, 3, 3, 3])
    b = boxes([5, 5, 15, 15], [10, 0, 20, 10], [0, 0, 10, 10], [3, 3, 3, 3])
    iou = pairwise_iou(a, b)
    assert iou.shape == (2, 4)
    # 5 x 5 overlap of two 100-pixel boxes: 25 / 175; touching boxes and empty boxes give 0, not NaN.
    assert iou[0].tolist() == pytest.approx([25 / 175, 0.0, 1.0, 0.0])
    assert iou[1].tolist() == [0.0, 0.0, 0.0, 0.0]


def test_pairwise_iou_plus_one_hand_worked():
    a = boxes([0, 0, 10, 10], [3, 3, 3, 3])
    b = boxes([5, 5, 15, 15], [10, 0, 20, 10], [3, 3, 3, 3])
    iou = pairwise_iou(a, b, legacy_plus_one=True)
    # 6 x 6 pixels shared by two 11 x 11 boxes; touching boxes share the column x = 10 (1 x 11 pixels);
    # a one-pixel box overlaps itself fully and lies inside the first box.
    assert iou[0].tolist() == pytest.approx([36 / (121 + 121 - 36), 11 / (121 + 121 - 11), 1 / 121])
    assert iou[1].tolist() == pytest.approx([0.0, 0.0, 1.0])


@pytest.mark.parametrize("plus_one", [False, True])
def test_pairwise_iou_matches_float64_reference(plus_one):
    generator = torch.Generator().manual_seed(3)
    corners = torch.rand(7, 2, generator=generator) * 40
    a = torch.cat([corners, corners + torch.rand(7, 2, generator=generator) * 30], dim=1)
    b = torch.cat([corners.flip(0), corners.flip(0) + torch.rand(7, 2, generator=generator) * 30], dim=1)
    iou = pairwise_iou(a.double(), b.double(), legacy_plus_one=plus_one)
    for i, j in itertools.product(range(7), range(7)):
        assert iou[i, j].item() == pytest.approx(reference_iou(a[i].double().tolist(), b[j].double().tolist(),
                                                               plus_one), abs=1e-12)


def test_clip_in_both_conventions_leaves_input_alone():
    b = boxes([-5, -3, 40, 25], [2, 4, 6, 8])
    original = b.clone()
    assert clip_boxes(b, (20, 30)).tolist() == [[0, 0, 30, 20], [2, 4, 6, 8]]
    assert clip_boxes(b, (20, 30), legacy_plus_one=True).tolist() == [[0, 0, 29, 19], [2, 4, 6, 8]]
    assert torch.equal(b, original)


def test_nonempty_thresholds():
    b = boxes([0, 0, 0, 5], [0, 0, 2, 5], [0, 0, 3, 5], [4, 0, 3, 5])
    # detectron2: sides strictly above the threshold.
    assert nonempty(b).tolist() == [False, True, True, False]
    assert nonempty(b, threshold=2).tolist() == [False, False, True, False]
    # Detectron.pytorch: inclusive sides (x2 - x1 + 1) at least the threshold.
    assert nonempty(b, legacy_plus_one=True).tolist() == [True, True, True, True]
    assert nonempty(b, threshold=3, legacy_plus_one=True).tolist() == [False, True, True, False]


def test_half_open_moves_the_far_corner_only_under_plus_one():
    b = boxes([1, 2, 3, 4])
    assert half_open(b).tolist() == [[1, 2, 3, 4]]
    assert half_open(b, legacy_plus_one=True).tolist() == [[1, 2, 4, 5]]


def test_inside_image_with_boundary_threshold():
    b = boxes([0, 0, 29, 19], [-1, 0, 10, 10], [0, 0, 30, 10], [0, 0, 10, 20])
    assert inside_image(b, (20, 30)).tolist() == [True, False, False, False]
    assert inside_image(b, (20, 30), boundary_threshold=1).tolist() == [True, True, True, True]
