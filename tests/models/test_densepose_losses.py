"""DensePose R-CNN training targets and losses (densepose.md 2.4), against hand-worked values and float64 loops."""
import math

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch

from posekit.config import load_cfg
from posekit.models import build_model
from posekit.models.densepose.losses import (DensePoseLosses, part_labels, point_targets, resample_to_rois,
                                             select_densepose_rois)
from posekit.structures import Instances
from posekit.structures.instances import DensePosePoints

from test_densepose_model import DENSEPOSE, LEGACY, TINY, random_image

LOSS_KEYS = {"loss_densepose_U", "loss_densepose_V", "loss_densepose_I", "loss_densepose_S"}


def points(x, y, chart=None, masks=None):
    count = len(x)
    chart = chart if chart is not None else [1] * count
    return DensePosePoints.from_lists(x, y, chart, [0.5] * count, [0.5] * count, masks)


def rle(mask):
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))


# ---------- point placement and bilinear sampling, by hand ----------

def test_one_point_moves_from_the_gt_box_frame_to_the_roi_heatmap():
    # gt box x0 10, w 100; y0 20, h 200: (64, 128) in 256 units is image (35, 120).
    # ROI x0 30, w 50 on 56 cells: (35 - 30) * 56 / 50 = 5.6; y0 100, h 100: (120 - 100) * 56 / 100 = 11.2.
    targets = point_targets(torch.tensor([[10.0, 20, 110, 220]]), torch.tensor([[30.0, 100, 80, 200]]),
                            [points([64.0], [128.0])], (56, 56))
    assert (targets.x_low.item(), targets.x_high.item(), targets.y_low.item(), targets.y_high.item()) == (5, 6, 11, 12)
    assert targets.x_weight.item() == pytest.approx(0.6, abs=1e-5)
    assert targets.y_weight.item() == pytest.approx(0.2, abs=1e-5)
    assert targets.valid.tolist() == [True]


def test_bilinear_sampling_on_edges_inside_outside_and_at_the_last_cells():
    # gt box = ROI = [0, 8) x [0, 8) on a 4 x 4 map: a point at u units lies on grid position u * 4 / 256.
    box = torch.tensor([[0.0, 0, 8, 8]])
    # (1.5, 2.25) inside; (2, 1) on cell edges; (3.75, 3.75) beyond the last cell centre; a point left of the
    # ROI (x = -4 units) and one at x = 256 units (= the ROI's right edge, excluded).
    x = [96.0, 128.0, 240.0, -4.0, 256.0]
    y = [144.0, 64.0, 240.0, 64.0, 64.0]
    targets = point_targets(box, box, [points(x, y)], (4, 4))
    assert targets.valid.tolist() == [True, True, True, False, False]
    # On the last cell the position is clamped to it: weight 0, not 0.75.
    assert (targets.x_low[2].item(), targets.x_high[2].item(), targets.x_weight[2].item()) == (3, 3, 0.0)
    maps = torch.arange(2 * 16, dtype=torch.float32).reshape(1, 2, 4, 4) ** 1.5
    m = maps[0, 1]
    expected = [
        # x 1.5 -> cells 1, 2 at 0.5; y 2.25 -> rows 2, 3 at 0.25.
        0.5 * 0.75 * m[2, 1] + 0.5 * 0.75 * m[2, 2] + 0.5 * 0.25 * m[3, 1] + 0.5 * 0.25 * m[3, 2],
        m[1, 2],  # exactly on a cell: weight 0 on the upper neighbours
        m[3, 3],  # the last row and column have no upper neighbour: the point snaps to them
    ]
    sampled = targets.sample(maps, torch.ones(5, dtype=torch.long))
    assert torch.allclose(sampled[:3], torch.stack(expected))
    # All channels at once agree with the per-channel lookup.
    assert torch.allclose(targets.sample(maps)[:, 1], sampled)
    assert torch.allclose(targets.sample(maps)[1, 0], maps[0, 0, 1, 2])


# ---------- S targets ----------

def hand_made_masks():
    """Torso (part 1) on columns 0..159; head (part 14) on rows 0..79, columns 150..255, painted over the torso."""
    torso = np.zeros((256, 256), bool)
    torso[:, :160] = True
    head = np.zeros((256, 256), bool)
    head[:80, 150:] = True
    return [rle(torso)] + [[]] * 12 + [rle(head)]


def test_part_masks_are_painted_in_order():
    labels = part_labels(hand_made_masks())
    assert labels.shape == (256, 256)
    assert labels[0, 149] == 1 and labels[0, 150] == 14 and labels[100, 155] == 1 and labels[100, 200] == 0


def test_s_target_is_the_nearest_canvas_pixel_at_roi_cell_corners():
    # gt box [0, 100) square, ROI shifted right by 40 with 5 x 5 cells: column j samples canvas x
    # (-0.2 + 0.4 j + 1) / 2 * 255 = 102 + 51 j (306 is past the canvas: 0); row i samples y = 51 i.
    canvas = part_labels(hand_made_masks())[None]
    labels = resample_to_rois(canvas, torch.tensor([[0.0, 0, 100, 100]]), torch.tensor([[40.0, 0, 140, 100]]),
                              (5, 5))
    expected = torch.tensor([[1, 14, 14, 14, 0],
                             [1, 14, 14, 14, 0],
                             [1, 1, 0, 0, 0],
                             [1, 1, 0, 0, 0],
                             [1, 1, 0, 0, 0]], dtype=torch.float32)
    assert torch.equal(labels[0], expected)


# ---------- losses on two ROIs against a float64 loop ----------

def reference_cell(coord, gt_start, gt_size, roi_start, roi_size, cells):
    """(low, high, weight) of a point along one axis, or None outside the ROI."""
    position = gt_start + coord * gt_size / 256
    if not roi_start <= position < roi_start + roi_size:
        return None
    grid = (position - roi_start) * cells / roi_size
    low = min(math.floor(grid), cells - 1)
    high = min(low + 1, cells - 1)
    return low, high, min(grid, high) - low


def reference_sample(plane, cx, cy):
    (xl, xh, wx), (yl, yh, wy) = cx, cy
    return ((1 - wx) * (1 - wy) * plane[yl][xl] + wx * (1 - wy) * plane[yl][xh]
            + (1 - wx) * wy * plane[yh][xl] + wx * wy * plane[yh][xh])


def reference_s_labels(masks, gt, roi, cells, two_channels):
    canvas = np.zeros((256, 256), np.int64)
    for part, entry in enumerate(masks, start=1):
        if entry:
            canvas[mask_utils.decode(entry) > 0] = part
    gw, gh, rw, rh = gt[2] - gt[0], gt[3] - gt[1], roi[2] - roi[0], roi[3] - roi[1]
    starts = [2 * (roi[0] - gt[0]) / gw - 1, 2 * (roi[1] - gt[1]) / gh - 1]
    ends = [2 * (roi[0] + rw - gt[0]) / gw - 1, 2 * (roi[1] + rh - gt[1]) / gh - 1]
    labels = np.zeros((cells, cells), np.int64)
    for i in range(cells):
        for j in range(cells):
            col = round((starts[0] + j / cells * (ends[0] - starts[0]) + 1) / 2 * 255)
            row = round((starts[1] + i / cells * (ends[1] - starts[1]) + 1) / 2 * 255)
            if 0 <= col < 256 and 0 <= row < 256:
                labels[i, j] = canvas[row, col]
    return (labels > 0).astype(np.int64) if two_channels else labels


def reference_losses(gts, rois, annotations, outputs, weights, two_channels):
    """U, V, I, S by per-point and per-pixel loops in float64."""
    out = {k: v.detach().double().tolist() for k, v in outputs.items()}
    cells = len(out["u"][0][0])
    u_loss = v_loss = 0.0
    cross_entropies = []
    for r, (gt, roi, dp) in enumerate(zip(gts, rois, annotations)):
        for x, y, chart, u, v in zip(dp.x.tolist(), dp.y.tolist(), dp.chart.tolist(), dp.u.tolist(), dp.v.tolist()):
            cx = reference_cell(x, gt[0], gt[2] - gt[0], roi[0], roi[2] - roi[0], cells)
            cy = reference_cell(y, gt[1], gt[3] - gt[1], roi[1], roi[3] - roi[1], cells)
            if cx is None or cy is None:
                continue
            for name, target in (("u", u), ("v", v)):
                d = abs(reference_sample(out[name][r][chart], cx, cy) - target)
                term = 0.5 * d * d if d < 1 else d - 0.5
                u_loss, v_loss = (u_loss + term, v_loss) if name == "u" else (u_loss, v_loss + term)
            logits = [reference_sample(out["fine_segm"][r][c], cx, cy) for c in range(25)]
            top = max(logits)
            cross_entropies.append(top + math.log(sum(math.exp(l - top) for l in logits)) - logits[chart])
    pixel_losses = []
    for r, (gt, roi, dp) in enumerate(zip(gts, rois, annotations)):
        labels = reference_s_labels(dp.part_masks, gt, roi, cells, two_channels)
        for i in range(cells):
            for j in range(cells):
                logits = [out["coarse_segm"][r][c][i][j] for c in range(len(out["coarse_segm"][r]))]
                pixel_losses.append(math.log(sum(math.exp(l) for l in logits)) - logits[labels[i, j]])
    point_w, part_w, segm_w = weights
    return {"loss_densepose_U": u_loss * point_w, "loss_densepose_V": v_loss * point_w,
            "loss_densepose_I": sum(cross_entropies) / len(cross_entropies) * part_w,
            "loss_densepose_S": sum(pixel_losses) / len(pixel_losses) * segm_w}


def random_points(generator, count, masks):
    coords = torch.rand(2, count, generator=generator, dtype=torch.float64) * 256
    charts = torch.randint(1, 25, (count,), generator=generator)
    uv = torch.rand(2, count, generator=generator, dtype=torch.float64) * 1.5 - 0.25  # some |d| > 1
    return DensePosePoints.from_lists(coords[0].tolist(), coords[1].tolist(), charts.tolist(), uv[0].tolist(),
                                      uv[1].tolist(), masks)


@pytest.mark.parametrize("segm_channels, weights", [(2, (0.01, 1.0, 5.0)), (15, (0.1, 0.3, 2.0))],
                         ids=["modern", "legacy"])
def test_losses_on_two_rois_equal_a_float64_loop(segm_channels, weights):
    generator = torch.Generator().manual_seed(3)
    gts = [[10.0, 20.0, 110.0, 220.0], [5.0, 5.0, 69.0, 133.0]]
    rois = [[30.3, 41.7, 100.9, 200.2], [0.6, 0.0, 60.1, 120.7]]
    annotations = [random_points(generator, 30, hand_made_masks()), random_points(generator, 20, hand_made_masks())]
    images = [Instances((240, 240), gt_boxes=torch.tensor([gt]), proposal_boxes=torch.tensor([roi]),
                        gt_densepose=[dp]) for gt, roi, dp in zip(gts, rois, annotations)]
    cells = 12
    outputs = {"coarse_segm": torch.randn(2, segm_channels, cells, cells, generator=generator)}
    outputs.update({name: torch.randn(2, 25, cells, cells, generator=generator) for name in ("fine_segm", "u", "v")})
    losses = DensePoseLosses(*weights, segm_channels)(images, outputs)
    expected = reference_losses(gts, rois, annotations, outputs, weights, segm_channels == 2)
    assert set(losses) == LOSS_KEYS
    for key, value in expected.items():
        assert losses[key].item() == pytest.approx(value, rel=1e-5), key
    # Some points fall outside their ROI, so the selection was exercised.
    targets = point_targets(torch.tensor(gts), torch.tensor(rois), annotations, (cells, cells))
    assert 0 < targets.valid.sum() < 50


def test_weights_come_from_the_config():
    cfg = load_cfg(TINY, DENSEPOSE + LEGACY + ["MODEL.ROI_DENSEPOSE_HEAD.POINT_REGRESSION_WEIGHTS", "0.1",
                                               "MODEL.ROI_DENSEPOSE_HEAD.PART_WEIGHTS", "0.3",
                                               "MODEL.ROI_DENSEPOSE_HEAD.INDEX_WEIGHTS", "2.0"])
    losses = DensePoseLosses.from_config(cfg)
    assert (losses.point_weight, losses.part_weight, losses.segm_weight, losses.segm_channels) == (0.1, 0.3, 2.0, 15)


def test_points_all_outside_give_zero_point_losses_but_an_s_loss():
    box = torch.tensor([[0.0, 0, 8, 8]])
    image = Instances((8, 8), gt_boxes=box, proposal_boxes=torch.tensor([[0.0, 0, 4, 4]]),
                      gt_densepose=[points([200.0], [200.0], masks=hand_made_masks())])
    outputs = {name: torch.randn(1, 25, 4, 4, requires_grad=True) for name in ("fine_segm", "u", "v")}
    outputs["coarse_segm"] = torch.randn(1, 2, 4, 4, requires_grad=True)
    losses = DensePoseLosses(0.01, 1.0, 5.0, 2)([image], outputs)
    assert all(losses[k].item() == 0 for k in ("loss_densepose_U", "loss_densepose_V", "loss_densepose_I"))
    assert losses["loss_densepose_S"].item() > 0


# ---------- ROI selection ----------

def test_iou_exactly_at_the_threshold_is_excluded():
    gt = torch.tensor([[0.0, 0, 10, 10]] * 4)
    # IoU 0.5 exactly, 0.6, 1.0 without DensePose, 1.0.
    proposals = torch.tensor([[0.0, 0, 10, 5], [0.0, 0, 10, 6], [0.0, 0, 10, 10], [0.0, 0, 10, 10]])
    dp = points([1.0], [1.0])
    image = Instances((10, 10), gt_boxes=gt, proposal_boxes=proposals, gt_densepose=[dp, dp, None, dp])
    selected = select_densepose_rois([image], 0.5)[0]
    assert selected.proposal_boxes.tolist() == [[0.0, 0, 10, 6], [0.0, 0, 10, 10]]
    assert len(select_densepose_rois([Instances((10, 10), gt_boxes=gt, proposal_boxes=proposals)], 0.5)[0]) == 0


# ---------- the tiny model in training ----------

def tiny_training_model(*opts):
    torch.manual_seed(0)
    return build_model(load_cfg(TINY, DENSEPOSE + list(opts)), is_train=True).train()


def person(annotation):
    return Instances((128, 160), gt_boxes=torch.tensor([[10.0, 20.0, 90.0, 120.0]]), gt_classes=torch.tensor([0]),
                     gt_densepose=[annotation])


@pytest.mark.parametrize("opts", [[], LEGACY], ids=["decoder", "legacy"])
def test_tiny_model_training_returns_the_densepose_losses_and_trains_the_predictor(opts):
    model = tiny_training_model(*opts)
    annotation = random_points(torch.Generator().manual_seed(4), 40, hand_made_masks())
    losses = model([{"image": random_image(2), "instances": person(annotation)}])
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg"} | LOSS_KEYS
    assert all(torch.isfinite(value) for value in losses.values())
    assert all(losses[key] > 0 for key in LOSS_KEYS)
    sum(losses.values()).backward()
    predictor = model.roi_heads.densepose_predictor
    for layer in (predictor.ann_index_lowres, predictor.index_uv_lowres, predictor.u_lowres, predictor.v_lowres):
        assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


def test_a_batch_without_densepose_points_gives_zero_losses_with_gradients():
    model = tiny_training_model()
    losses = model([{"image": random_image(2), "instances": person(None)}])
    assert LOSS_KEYS <= set(losses)
    assert all(losses[key].item() == 0 for key in LOSS_KEYS)
    sum(losses.values()).backward()
    for name, param in model.roi_heads.densepose_predictor.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all() and not param.grad.abs().sum(), name
