"""The Keypoint R-CNN pieces KTN's keypoint branch uses (densepose.md 3.7; detectron2 keypoint_head semantics),
on hand-worked examples."""
import math

import torch

from posekit.models.detection.keypoint_head import (heatmaps_to_keypoints, keypoint_rcnn_loss, keypoints_to_heatmap,
                                                    select_with_visible_keypoints)
from posekit.structures import Instances

ROI = torch.tensor([[10.0, 20.0, 50.0, 60.0]])  # 40 x 40: cells of 10 pixels on a 4 x 4 map


def test_keypoints_fall_in_cells_of_the_roi_map():
    keypoints = torch.tensor([[[30.0, 40.0, 2], [50.0, 60.0, 1], [12.0, 59.9, 0], [9.9, 30.0, 2], [10.0, 20.0, 1]]])
    cells, valid = keypoints_to_heatmap(keypoints, ROI, 4)
    # (30, 40) -> cell (x 2, y 2); the right / bottom edge -> the last cell; invisible; left of the ROI; corner.
    assert valid.tolist() == [[True, True, False, False, True]]
    assert cells.tolist() == [[2 * 4 + 2, 3 * 4 + 3, 0, 0, 0]]


def test_keypoint_loss_is_the_mean_cross_entropy_over_valid_keypoints():
    logits = torch.zeros(1, 2, 4, 4)
    logits[0, 0, 2, 2] = 3.0  # keypoint 0's target cell, confident
    rois = [Instances((100, 100), proposal_boxes=ROI,
                      gt_keypoints=torch.tensor([[[30.0, 40.0, 2], [15.0, 25.0, 2]]]))]
    peaked = -math.log(math.exp(3) / (math.exp(3) + 15))
    flat = math.log(16)
    assert math.isclose(keypoint_rcnn_loss(logits, rois).item(), (peaked + flat) / 2, rel_tol=1e-6)
    assert math.isclose(keypoint_rcnn_loss(logits, rois, normalizer=4).item(), (peaked + flat) / 4, rel_tol=1e-6)
    invisible = [Instances((100, 100), proposal_boxes=ROI, gt_keypoints=torch.zeros(1, 2, 3))]
    assert keypoint_rcnn_loss(logits.requires_grad_(), invisible).item() == 0


def test_decoding_takes_the_peak_cell_centre_in_image_pixels():
    maps = torch.zeros(1, 2, 4, 4)
    maps[0, 0, 1, 2] = 5.0
    maps[0, 1, 3, 0] = 2.0
    # A box of the map's size: no resizing; cell (y 1, x 2) -> (10 + 2.5, 20 + 1.5).
    decoded = heatmaps_to_keypoints(maps, torch.tensor([[10.0, 20.0, 14.0, 24.0]]))
    assert decoded[0, 0, :2].tolist() == [12.5, 21.5] and decoded[0, 1, :2].tolist() == [10.5, 23.5]
    assert decoded[0, 0, 2].item() == 5.0
    # Score: exp(logit - max) over the sum of exp(map - max) on the (here equal) Z x Z map.
    assert math.isclose(decoded[0, 0, 3].item(), 1 / (1 + 15 * math.exp(-5)), rel_tol=1e-6)
    # A 3.5-pixel-wide box decodes on 4 columns scaled back by 3.5 / 4.
    narrow = heatmaps_to_keypoints(maps, torch.tensor([[10.0, 20.0, 13.5, 24.0]]))
    assert math.isclose(narrow[0, 0, 0].item(), 10 + 2.5 * 3.5 / 4, rel_tol=1e-6)


def test_rois_without_a_visible_keypoint_inside_are_left_out():
    rois = Instances((100, 100), proposal_boxes=torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0],
                                                             [0.0, 0.0, 50.0, 50.0]]),
                     gt_keypoints=torch.tensor([[[10.0, 10.0, 2]], [[25.0, 25.0, 0]], [[60.0, 5.0, 2]]]))
    assert select_with_visible_keypoints(rois).proposal_boxes.tolist() == [[0.0, 0.0, 10.0, 10.0]]

