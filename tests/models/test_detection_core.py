"""The detector's core pieces on hand-worked examples: box coding, anchors (detectron2 and Detectron v1),
matching, sampling, FPN level assignment and ROI pooling."""
import math

import pytest
import torch

from posekit.models.detection.anchors import AnchorGenerator, cell_anchors, legacy_cell_anchors
from posekit.models.detection.box_coder import Box2BoxTransform
from posekit.models.detection.matcher import Matcher
from posekit.models.detection.poolers import ROIPooler, assign_boxes_to_levels
from posekit.models.detection.sampler import subsample_labels
from posekit.ops import roi_align

SQRT2 = math.sqrt(2.0)


def boxes(*rows, dtype=torch.float32):
    return torch.tensor(rows, dtype=dtype)


# ----------------------------------------------------------------------------------------------- box coding

def test_get_deltas_hand_worked_with_weights():
    # Source: width 10, height 20, centre (5, 10). Target: width 20, height 10, centre (11, 7).
    src, tgt = boxes([0, 0, 10, 20]), boxes([1, 2, 21, 12])
    deltas = Box2BoxTransform((1, 1, 1, 1)).get_deltas(src, tgt)
    assert deltas[0].tolist() == pytest.approx([0.6, -0.15, math.log(2), math.log(0.5)])
    weighted = Box2BoxTransform((10, 10, 5, 5)).get_deltas(src, tgt)
    assert weighted[0].tolist() == pytest.approx([6.0, -1.5, 5 * math.log(2), 5 * math.log(0.5)])
    assert Box2BoxTransform((10, 10, 5, 5)).apply_deltas(weighted, src)[0].tolist() == pytest.approx([1, 2, 21, 12])


def test_plus_one_convention_hand_worked():
    coder = Box2BoxTransform((1, 1, 1, 1), legacy_plus_one=True)
    # Source pixels 0..9 x 0..19: width 10, height 20, centre (5, 10). Target pixels 1..20 x 2..11: width 20,
    # height 10, centre (11, 7): the same deltas as the continuous example above.
    src, tgt = boxes([0, 0, 9, 19]), boxes([1, 2, 20, 11])
    deltas = coder.get_deltas(src, tgt)
    assert deltas[0].tolist() == pytest.approx([0.6, -0.15, math.log(2), math.log(0.5)])
    # Decoding: x1 = 11 - 10 = 1, x2 = 11 + 10 - 1 = 20.
    assert coder.apply_deltas(deltas, src)[0].tolist() == pytest.approx([1, 2, 20, 11])
    # Doubling a 0..9 box: detectron2 sees width 9 around 4.5, Detectron width 10 around 5.
    grow = torch.tensor([[0.0, 0.0, math.log(2), math.log(2)]])
    square = boxes([0, 0, 9, 9])
    assert Box2BoxTransform((1, 1, 1, 1)).apply_deltas(grow, square)[0].tolist() == pytest.approx(
        [-4.5, -4.5, 13.5, 13.5])
    assert coder.apply_deltas(grow, square)[0].tolist() == pytest.approx([-5, -5, 14, 14])


def test_scale_clamp_limits_growth():
    # dw = dh = 10 is clamped to log(1000 / 16): a 16-pixel box centred on 8 grows to 1000 pixels.
    deltas = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    decoded = Box2BoxTransform((1, 1, 1, 1)).apply_deltas(deltas, boxes([0, 0, 16, 16]))
    assert decoded[0].tolist() == pytest.approx([-492, -492, 508, 508], rel=1e-5)
    tight = Box2BoxTransform((1, 1, 1, 1), scale_clamp=math.log(2)).apply_deltas(deltas, boxes([0, 0, 16, 16]))
    assert tight[0].tolist() == pytest.approx([-8, -8, 24, 24])


def test_class_specific_deltas_decode_per_class():
    src = boxes([0, 0, 10, 10])
    deltas = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.1, -0.2, 0.0, 0.0]])
    decoded = Box2BoxTransform((1, 1, 1, 1)).apply_deltas(deltas, src)
    assert decoded.shape == (1, 8)
    assert decoded[0].tolist() == pytest.approx([0, 0, 10, 10, 1, -2, 11, 8])


@pytest.mark.parametrize("plus_one", [False, True])
def test_round_trip_in_float64(plus_one):
    generator = torch.Generator().manual_seed(0)
    corners = torch.rand(20, 2, generator=generator, dtype=torch.float64) * 100
    src = torch.cat([corners, corners + 5 + torch.rand(20, 2, generator=generator, dtype=torch.float64) * 50], 1)
    tgt = src + torch.randn(20, 4, generator=generator, dtype=torch.float64) * 2
    coder = Box2BoxTransform((10, 10, 5, 5), legacy_plus_one=plus_one)
    decoded = coder.apply_deltas(coder.get_deltas(src, tgt), src)
    assert decoded.dtype == torch.float64
    torch.testing.assert_close(decoded, tgt, rtol=0, atol=1e-9)


# ----------------------------------------------------------------------------------------------------- anchors

def test_detectron2_cell_anchors_size_major():
    cells = cell_anchors([32, 64], [0.5, 1.0, 2.0])
    # Area s^2 with h / w = a: a = 0.5 gives w = s sqrt(2), h = s / sqrt(2).
    expected = [[-16 * SQRT2, -8 * SQRT2, 16 * SQRT2, 8 * SQRT2], [-16, -16, 16, 16],
                [-8 * SQRT2, -16 * SQRT2, 8 * SQRT2, 16 * SQRT2], [-32 * SQRT2, -16 * SQRT2, 32 * SQRT2, 16 * SQRT2],
                [-32, -32, 32, 32], [-16 * SQRT2, -32 * SQRT2, 16 * SQRT2, 32 * SQRT2]]
    torch.testing.assert_close(cells, torch.tensor(expected), rtol=0, atol=1e-5)


def test_detectron_v1_fifteen_anchors():
    cells = legacy_cell_anchors(16, [32, 64, 128, 256, 512], [0.5, 1.0, 2.0])
    assert cells.shape == (15, 4)
    # Reference window pixels 0..15, centre 7.5. Ratio 0.5: w = round(sqrt(512)) = 23, h = round(11.5) = 12
    # (half to even); size 32 doubles both to 46 x 24: 7.5 -+ 22.5, 7.5 -+ 11.5. Size 128: 184 x 96.
    assert cells[0].tolist() == [-15, -4, 30, 19]
    assert cells[1].tolist() == [-38, -16, 53, 31]
    assert cells[2].tolist() == [-84, -40, 99, 55]
    # Ratio 1, size 32: 32 x 32 -> 7.5 -+ 15.5. Ratio 2: w = round(sqrt(128)) = 11, h = 22; size 32: 22 x 44.
    assert cells[5].tolist() == [-8, -8, 23, 23]
    assert cells[10].tolist() == [-3, -14, 18, 29]
    assert cells[12].tolist() == [-36, -80, 51, 95]


def test_grid_order_and_offset():
    feature = torch.zeros(1, 1, 2, 3)
    anchors = AnchorGenerator([[32]], [[1.0]], [16], offset=0.0)([feature])[0]
    assert anchors.shape == (6, 4)
    # Location (y = 1, x = 2) is row y * W + x = 5, centred on (32, 16).
    assert anchors[5].tolist() == [16, 0, 48, 32]
    shifted = AnchorGenerator([[32]], [[1.0]], [16], offset=0.5)([feature])[0]
    assert shifted[5].tolist() == [24, 8, 56, 40]
    three = AnchorGenerator([32], [0.5, 1.0, 2.0], [16])([feature])[0]
    # (H, W, A) order: location 5, anchor 1 (ratio 1) is row 5 * 3 + 1.
    assert three.shape == (18, 4) and three[16].tolist() == [16, 0, 48, 32]


def test_fpn_levels_get_their_own_sizes_and_strides():
    features = [torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 2, 2)]
    generator = AnchorGenerator([[32], [64]], [[1.0]], [4, 8])
    assert generator.num_anchors == [1, 1]
    fine, coarse = generator(features)
    assert fine.shape == (16, 4) and coarse.shape == (4, 4)
    assert fine[5].tolist() == [-12, -12, 20, 20]    # centre (4, 4)
    assert coarse[3].tolist() == [-24, -24, 40, 40]  # centre (8, 8)
    with pytest.raises(ValueError, match="sizes"):
        AnchorGenerator([[32], [64], [128]], [[1.0]], [4, 8])


def test_detectron_v1_grid():
    generator = AnchorGenerator([[32, 64, 128, 256, 512]], [[0.5, 1.0, 2.0]], [16], offset=0.0,
                                legacy_plus_one=True)
    assert generator.num_anchors == [15]
    anchors = generator([torch.zeros(1, 1, 2, 3)])[0]
    assert anchors.shape == (90, 4)
    # Location (y = 1, x = 2) shifts by (32, 16); its first anchor is row 5 * 15.
    assert anchors[75].tolist() == [-15 + 32, -4 + 16, 30 + 32, 19 + 16]
    assert anchors[75 + 5].tolist() == [-8 + 32, -8 + 16, 23 + 32, 23 + 16]


def test_anchors_are_not_saved_with_the_weights():
    assert AnchorGenerator([[32]], [[1.0]], [16]).state_dict() == {}


# ----------------------------------------------------------------------------------------------------- matcher

def test_matcher_bands_and_ties():
    quality = torch.tensor([[0.9, 0.5, 0.1, 0.2, 0.0, 0.3, 0.1],
                            [0.1, 0.6, 0.25, 0.6, 0.0, 0.2, 0.7]])
    plain = Matcher([0.3, 0.7], [0, -1, 1], allow_low_quality_matches=False)
    matches, labels = plain(quality)
    assert matches.tolist() == [0, 1, 1, 1, 0, 0, 1]
    # A best quality of exactly 0.3 falls in the ignored band [0.3, 0.7); exactly 0.7 is positive.
    assert labels.tolist() == [1, -1, 0, -1, 0, -1, 1]
    assert labels.dtype == torch.int8 and matches.dtype == torch.int64
    matches, labels = Matcher([0.3, 0.7], [0, -1, 1], allow_low_quality_matches=True)(quality)
    # gt 1's best quality 0.7 is reached by prediction 6 only, gt 0's 0.9 by prediction 0: nothing changes.
    assert labels.tolist() == [1, -1, 0, -1, 0, -1, 1]
    tied = torch.tensor([[0.9, 0.5, 0.1, 0.2, 0.0],
                         [0.1, 0.6, 0.25, 0.6, 0.0]])
    matches, labels = Matcher([0.3, 0.7], [0, -1, 1], allow_low_quality_matches=True)(tied)
    # gt 1's best, 0.6, is shared by predictions 1 and 3: both become positive.
    assert labels.tolist() == [1, 1, 0, 1, 0]
    assert matches.tolist() == [0, 1, 1, 1, 0]


def test_low_quality_match_keeps_the_predictions_own_best_gt():
    quality = torch.tensor([[0.5, 0.45, 0.0],
                            [0.55, 0.1, 0.0]])
    matches, labels = Matcher([0.3, 0.7], [0, -1, 1], allow_low_quality_matches=True)(quality)
    # Prediction 0 is gt 0's best (0.5) and gt 1's best (0.55): positive, matched to gt 1, its own best.
    assert labels.tolist() == [1, -1, 0]
    assert matches.tolist() == [1, 0, 0]


def test_matcher_without_ground_truth_and_bad_arguments():
    matches, labels = Matcher([0.3, 0.7], [0, -1, 1], True)(torch.zeros(0, 4))
    assert matches.tolist() == [0, 0, 0, 0] and labels.tolist() == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="above 0"):
        Matcher([0.0, 0.5], [0, -1, 1])
    with pytest.raises(ValueError, match="labels"):
        Matcher([0.3, 0.7], [0, 1])
    with pytest.raises(ValueError, match="non-decreasing"):
        Matcher([0.7, 0.3], [0, -1, 1])


# ----------------------------------------------------------------------------------------------------- sampler

def labels_with(positives, negatives, ignored):
    return torch.tensor([1] * positives + [0] * negatives + [-1] * ignored)


@pytest.mark.parametrize("positives, negatives, samples, fraction, expected", [
    (10, 20, 16, 0.25, (4, 12)),   # both capped
    (2, 20, 16, 0.25, (2, 14)),    # few positives: negatives fill
    (10, 20, 64, 0.5, (10, 20)),   # too few of both: all taken
    (10, 20, 7, 0.5, (3, 4)),      # int(3.5) = 3 positives
])
def test_sample_counts(positives, negatives, samples, fraction, expected):
    labels = labels_with(positives, negatives, 5)
    pos_idx, neg_idx = subsample_labels(labels, samples, fraction, bg_label=0)
    assert (len(pos_idx), len(neg_idx)) == expected
    assert (labels[pos_idx] == 1).all() and (labels[neg_idx] == 0).all()
    assert len(set(pos_idx.tolist())) == len(pos_idx) and len(set(neg_idx.tolist())) == len(neg_idx)


def test_sampler_background_label_and_seed():
    # Box-head style: classes 0..2 are foreground, 3 is background.
    labels = torch.tensor([0, 1, 2, 3, 3, 3, -1, 2])
    pos_idx, neg_idx = subsample_labels(labels, 4, 0.5, bg_label=3)
    assert set(pos_idx.tolist()) <= {0, 1, 2, 7} and len(pos_idx) == 2
    assert set(neg_idx.tolist()) <= {3, 4, 5} and len(neg_idx) == 2
    draws = []
    for _ in range(2):
        torch.manual_seed(7)
        draws.append([t.tolist() for t in subsample_labels(labels_with(50, 50, 0), 10, 0.5, 0)])
    assert draws[0] == draws[1]


# ------------------------------------------------------------------------------------------ FPN level assignment

def test_assign_boxes_to_levels():
    def square(side, x=0.0):
        return [x, 0.0, x + side, side]
    first = boxes(square(224), square(112), square(111))
    second = boxes(square(448), square(10), square(2000), [0, 0, 100, 400])
    levels = assign_boxes_to_levels([first, second], min_level=2, max_level=5)
    # floor(4 + log2(s / 224)): 224 -> 4, 112 -> 3, 111 -> 2 (2.987), 448 -> 5, 10 -> clamped 2, 2000 -> clamped 5,
    # 100 x 400 (s = 200) -> 3 (3.836); returned as offsets from level 2.
    assert levels.tolist() == [2, 1, 0, 3, 0, 3, 1]
    assert levels.dtype == torch.int64


# ------------------------------------------------------------------------------------------------- ROI pooling

def test_single_level_pooler_is_a_plain_roi_align():
    generator = torch.Generator().manual_seed(1)
    feature = torch.randn(2, 3, 12, 10, generator=generator)
    per_image = [boxes([8, 16, 100, 120], [40, 40, 60, 90]), boxes([0, 0, 150, 180])]
    pooled = ROIPooler(7, [1 / 16], 2, "ROIAlign")([feature], per_image)
    rois = boxes([0, 8, 16, 100, 120], [0, 40, 40, 60, 90], [1, 0, 0, 150, 180])
    expected = roi_align(feature, rois, (7, 7), 1 / 16, 2, aligned=False)
    assert pooled.shape == (3, 3, 7, 7)
    torch.testing.assert_close(pooled, expected, rtol=0, atol=0)
    aligned = ROIPooler(7, [1 / 16], 2, "ROIAlignV2")([feature], per_image)
    torch.testing.assert_close(aligned, roi_align(feature, rois, (7, 7), 1 / 16, 2, aligned=True), rtol=0, atol=0)
    assert not torch.allclose(aligned, pooled)


def test_multi_level_pooler_pools_each_box_from_its_level():
    generator = torch.Generator().manual_seed(2)
    features = [torch.randn(2, 4, 32, 32, generator=generator), torch.randn(2, 4, 16, 16, generator=generator)]
    # Side 50 -> level 2 (clamped from 1), side 200 -> level 3, on strides 4 and 8.
    small, large = [10, 10, 60, 60], [0, 20, 200, 220]
    per_image = [boxes(large, small), boxes(small)]
    pooled = ROIPooler((5, 5), [1 / 4, 1 / 8], 0, "ROIAlignV2")(features, per_image)
    expected = torch.cat([
        roi_align(features[1], boxes([0] + large), 5, 1 / 8, 0, aligned=True),
        roi_align(features[0], boxes([0] + small), 5, 1 / 4, 0, aligned=True),
        roi_align(features[0], boxes([1] + small), 5, 1 / 4, 0, aligned=True),
    ])
    torch.testing.assert_close(pooled, expected, rtol=0, atol=0)


def test_pooler_edge_cases():
    features = [torch.zeros(0, 4, 8, 8)]
    assert ROIPooler(7, [1 / 16], 2, "ROIAlign")(features, []).shape == (0, 4, 7, 7)
    empty = ROIPooler(7, [1 / 4, 1 / 8], 2, "ROIAlign")([torch.zeros(1, 4, 8, 8), torch.zeros(1, 4, 4, 4)],
                                                          [torch.zeros(0, 4)])
    assert empty.shape == (0, 4, 7, 7)
    with pytest.raises(ValueError, match="ROIPool"):
        ROIPooler(7, [1 / 16], 2, "ROIPool")
    with pytest.raises(ValueError, match="pyramid"):
        ROIPooler(7, [1 / 4, 1 / 16], 2, "ROIAlign")
