"""The RPN: head layout and init, anchor labels and losses on a hand-worked two-box scene, proposal selection
(top-k, clipping, size filter, per-level NMS, order) in detectron2's and Detectron v1's conventions."""
import math
import re
from typing import List

import pytest
import torch
from torch import Tensor, nn
from yacs.config import CfgNode as CN

from posekit.config import get_cfg
from posekit.models.detection.rpn import RPN, StandardRPNHead, find_top_rpn_proposals
from posekit.utils.errors import ConfigError


def rpn_cfg(sizes=((32,),), ratios=((1.0,),), offset=0.0, legacy=False) -> CN:
    """The detector family's tree (detectron2's defaults) with the anchors and box convention a test chooses."""
    cfg = get_cfg("detector")
    cfg.MODEL.LEGACY_PLUS_ONE = legacy
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [list(s) for s in sizes]
    cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS = [list(r) for r in ratios]
    cfg.MODEL.ANCHOR_GENERATOR.OFFSET = offset
    return cfg


INPUT_SHAPE = {"res4": (4, 16)}  # (channels, stride)


class FixedHead(nn.Module):
    """Head outputs chosen by the test, per level: logits (N, A, H, W), deltas (N, 4A, H, W)."""

    def __init__(self, logits: Tensor, deltas: Tensor, *more_levels: Tensor):
        super().__init__()
        tensors = (logits, deltas) + more_levels
        self.logits = nn.ParameterList(tensors[0::2])
        self.deltas = nn.ParameterList(tensors[1::2])

    def forward(self, features: List[Tensor]):
        return list(self.logits), list(self.deltas)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def smooth_l1(d: float, beta: float) -> float:
    return abs(d) if beta == 0 else (0.5 * d * d / beta if abs(d) < beta else abs(d) - 0.5 * beta)


# The two-box scene: stride 16, one 32 x 32 anchor per location, offset 0, a 2 x 4 grid (anchor k = 4 y + x):
#   a0 [-16,-16,16,16]  a1 [0,-16,32,16]  a2 [16,-16,48,16]  a3 [32,-16,64,16]
#   a4 [-16,  0,16,32]  a5 [0,  0,32,32]  a6 [16,  0,48,32]  a7 [32,  0,64,32]
# g0 = a5. IoU with g0: a0 1/7, a1 1/3, a2 1/7, a3 0, a4 1/3, a5 1, a6 1/3, a7 0.
# g1 = [40,4,56,20] (16 x 16): a2 96/1184, a3 192/1088, a6 128/1152, a7 256/1024 = 0.25, others 0.
# Labels: a0, a2, a3 negative (best < 0.3); a1, a4, a6 ignored (1/3); a5 positive (g0); a7 positive as g1's best
# anchor (low-quality match). The second image has no ground truth: all eight anchors are negative.
GT_BOXES = [torch.tensor([[0.0, 0.0, 32.0, 32.0], [40.0, 4.0, 56.0, 20.0]]), torch.zeros(0, 4)]
IMAGE_SIZES = [(32, 64), (32, 64)]
LOGITS = [[0.5, -1.0, 2.0, -0.5, 1.5, 3.0, 0.25, -2.0], [0.1, 0.2, -0.3, 0.4, -0.5, 0.6, -0.7, 0.8]]
A5_DELTAS, A7_DELTAS = [0.1, -0.2, 0.8, 0.0], [0.05, 0.1, -0.5, -0.6]
# a5 -> g0: zero deltas. a7 (centre (48, 16), 32 x 32) -> g1 (centre (48, 12), 16 x 16).
A5_TARGET, A7_TARGET = [0.0, 0.0, 0.0, 0.0], [0.0, (12 - 16) / 32, math.log(0.5), math.log(0.5)]


def two_box_rpn(**rpn_keys) -> RPN:
    cfg = rpn_cfg()
    for key, value in rpn_keys.items():
        setattr(cfg.MODEL.RPN, key, value)
    rpn = RPN.from_config(cfg, INPUT_SHAPE)
    logits = torch.tensor(LOGITS).view(2, 1, 2, 4)
    deltas = torch.zeros(2, 4, 2, 4)
    deltas[0, :, 1, 1] = torch.tensor(A5_DELTAS)
    deltas[0, :, 1, 3] = torch.tensor(A7_DELTAS)
    rpn.rpn_head = FixedHead(logits, deltas)
    return rpn


def test_two_box_labels():
    rpn = two_box_rpn()
    anchors = rpn.anchor_generator([torch.zeros(2, 4, 2, 4)])
    labels, matched = rpn.label_and_sample_anchors(anchors, IMAGE_SIZES, GT_BOXES)
    assert labels[0].tolist() == [0, -1, 0, 0, -1, 1, -1, 1]
    assert labels[1].tolist() == [0] * 8
    assert matched[0][5].tolist() == [0, 0, 32, 32] and matched[0][7].tolist() == [40, 4, 56, 20]


def test_boundary_threshold_ignores_straddling_anchors():
    rpn = two_box_rpn(BOUNDARY_THRESH=0)
    anchors = rpn.anchor_generator([torch.zeros(1, 4, 2, 4)])
    # In a 40 x 70 image only a5, a6, a7 lie inside; a6 stays ignored (IoU 1/3).
    labels, _ = rpn.label_and_sample_anchors(anchors, [(40, 70)], GT_BOXES[:1])
    assert labels[0].tolist() == [-1, -1, -1, -1, -1, 1, -1, 1]


@pytest.mark.parametrize("beta", [0.0, 0.5])
def test_two_box_losses(beta):
    rpn = two_box_rpn(SMOOTH_L1_BETA=beta, LOSS_WEIGHT=2.0, BBOX_REG_LOSS_WEIGHT=0.5).train()
    _, losses = rpn(IMAGE_SIZES, {"res4": torch.zeros(2, 4, 2, 4)}, GT_BOXES)
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_loc"}
    normalizer = 256 * 2
    sampled = {0: 0, 2: 0, 3: 0, 5: 1, 7: 1}
    cls = sum(softplus(LOGITS[0][k]) - y * LOGITS[0][k] for k, y in sampled.items())
    cls += sum(softplus(x) for x in LOGITS[1])
    loc = sum(smooth_l1(p - t, beta) for p, t in zip(A5_DELTAS + A7_DELTAS, A5_TARGET + A7_TARGET))
    assert losses["loss_rpn_cls"].item() == pytest.approx(2.0 * cls / normalizer, rel=1e-6)
    assert losses["loss_rpn_loc"].item() == pytest.approx(2.0 * 0.5 * loc / normalizer, rel=1e-6)


def test_sampling_caps_positives_and_fills_with_negatives():
    # BATCH_SIZE_PER_IMAGE 2 at fraction 0.5: one of the two positives and one of the three negatives.
    rpn = two_box_rpn(BATCH_SIZE_PER_IMAGE=2)
    anchors = rpn.anchor_generator([torch.zeros(1, 4, 2, 4)])
    torch.manual_seed(0)
    labels, _ = rpn.label_and_sample_anchors(anchors, IMAGE_SIZES[:1], GT_BOXES[:1])
    positives, negatives = torch.nonzero(labels[0] == 1).flatten(), torch.nonzero(labels[0] == 0).flatten()
    assert len(positives) == 1 and positives.item() in (5, 7)
    assert len(negatives) == 1 and negatives.item() in (0, 2, 3)


def test_plus_one_targets_in_the_loss():
    # One Detectron anchor: ratio 1, size 32 at stride 16 is pixels -8..23 (32 wide, centre 8).
    rpn = RPN.from_config(rpn_cfg(legacy=True), INPUT_SHAPE).train()
    rpn.rpn_head = FixedHead(torch.full((1, 1, 1, 1), 0.7), torch.zeros(1, 4, 1, 1))
    # gt pixels -8..39 x -8..23: 48 x 32, centre (16, 8); IoU 1024 / 1536 is in the ignored band, but it is
    # the gt's best anchor. Targets: dx = 8 / 32, dw = log(48 / 32).
    gt = [torch.tensor([[-8.0, -8.0, 39.0, 23.0]])]
    _, losses = rpn([(32, 48)], {"res4": torch.zeros(1, 4, 1, 1)}, gt)
    assert losses["loss_rpn_loc"].item() == pytest.approx((0.25 + math.log(1.5)) / 256, rel=1e-6)
    assert losses["loss_rpn_cls"].item() == pytest.approx((softplus(0.7) - 0.7) / 256, rel=1e-6)


def test_plus_one_iou_in_the_labels():
    # Detectron anchors -8..23, 8..39, 24..55 (32 pixels); gt 25..56. Anchor 1 overlaps it by 15 pixel columns:
    # IoU 15 / 49 = 0.306, ignored; in continuous units it would be 14 / 48 = 0.292, negative.
    rpn = RPN.from_config(rpn_cfg(legacy=True), INPUT_SHAPE)
    anchors = rpn.anchor_generator([torch.zeros(1, 4, 1, 3)])
    labels, _ = rpn.label_and_sample_anchors(anchors, [(32, 64)], [torch.tensor([[25.0, -8.0, 56.0, 23.0]])])
    assert labels[0].tolist() == [0, -1, 1]


def test_training_forward_gives_gradients_to_the_head_but_not_to_proposals():
    torch.manual_seed(0)
    cfg = rpn_cfg(offset=0.5)
    rpn = RPN.from_config(cfg, INPUT_SHAPE).train()
    feature = torch.randn(1, 4, 4, 4, requires_grad=True)
    proposals, losses = rpn([(64, 64)], {"res4": feature}, [torch.tensor([[4.0, 8.0, 40.0, 50.0]])])
    sum(losses.values()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in rpn.rpn_head.parameters())
    for key in ("proposal_boxes", "objectness_logits"):
        assert not proposals[0][key].requires_grad and proposals[0][key].grad_fn is None


# ------------------------------------------------------------------------------------------- proposal selection

def level_inputs(rows, logits_per_image):
    boxes = torch.tensor(rows, dtype=torch.float32)
    return boxes[None].expand(len(logits_per_image), -1, -1), torch.tensor(logits_per_image)


def test_find_top_proposals_counts_order_clipping_and_per_level_nms():
    # Level 0: b1 overlaps b0 (IoU 0.905), b2 lies outside the image, b3 is the lowest of four.
    level0 = level_inputs([[10, 10, 50, 50], [12, 10, 52, 50], [-20, -20, -10, -10], [60, 60, 90, 90]],
                          [[5.0, 4.0, 3.0, 1.0], [5.0, 4.0, 0.5, 1.0]])
    # Level 1: c0 duplicates b0 on another level (kept), c1 reaches past the right border, c2 is 3 x 3.
    level1 = level_inputs([[10, 10, 50, 50], [70, 0, 130, 40], [0, 0, 3, 3]], [[4.5, 2.0, 6.0], [4.5, 2.0, 6.0]])
    proposals = [level0[0], level1[0]]
    logits = [level0[1], level1[1]]
    sizes = [(100, 100), (100, 80)]
    result = find_top_rpn_proposals(proposals, logits, sizes, nms_thresh=0.7, pre_nms_topk=3, post_nms_topk=10,
                                    min_box_size=3, training=False)
    # Image 0: level 0's top three are b0, b1, b2 (b2 clipped empty, b1 suppressed); image 1's are b0, b1, b3.
    assert result[0]["proposal_boxes"].tolist() == [[10, 10, 50, 50], [10, 10, 50, 50], [70, 0, 100, 40]]
    assert result[0]["objectness_logits"].tolist() == [5.0, 4.5, 2.0]
    assert result[1]["proposal_boxes"].tolist() == [[10, 10, 50, 50], [10, 10, 50, 50], [70, 0, 80, 40],
                                                    [60, 60, 80, 90]]
    assert result[1]["objectness_logits"].tolist() == [5.0, 4.5, 2.0, 1.0]
    top_two = find_top_rpn_proposals(proposals, logits, sizes, 0.7, 3, 2, 3, training=False)
    assert [r["objectness_logits"].tolist() for r in top_two] == [[5.0, 4.5], [5.0, 4.5]]


def test_find_top_proposals_plus_one_convention():
    # p1 overlaps p0 by 1 x 2 of 2 x 2 (IoU 1/3); counting pixels, 2 x 3 of 3 x 3 (IoU 6/12 = 0.5).
    rows = [[0, 0, 2, 2], [1, 0, 3, 2], [5, 5, 20, 20], [-20, -20, -10, -10]]
    boxes, logits = level_inputs(rows, [[3.0, 2.0, 1.0, 0.5]])
    plain = find_top_rpn_proposals([boxes], [logits], [(10, 10)], 0.4, 100, 100, 0.0, training=False)[0]
    assert plain["proposal_boxes"].tolist() == [[0, 0, 2, 2], [1, 0, 3, 2], [5, 5, 10, 10]]
    legacy = find_top_rpn_proposals([boxes], [logits], [(10, 10)], 0.4, 100, 100, 0.0, training=False,
                                    legacy_plus_one=True)[0]
    # Clipped to pixel 9; the box clipped to pixel (0, 0) is one pixel and is kept, as in Detectron.pytorch.
    assert legacy["proposal_boxes"].tolist() == [[0, 0, 2, 2], [5, 5, 9, 9], [0, 0, 0, 0]]
    assert legacy["objectness_logits"].tolist() == [3.0, 1.0, 0.5]


def test_non_finite_proposals_fail_in_training_and_are_dropped_in_test():
    boxes, logits = level_inputs([[0, 0, 5, 5], [float("nan"), 0, 5, 5]], [[1.0, 2.0]])
    with pytest.raises(FloatingPointError):
        find_top_rpn_proposals([boxes], [logits], [(10, 10)], 0.7, 10, 10, 0.0, training=True)
    kept = find_top_rpn_proposals([boxes], [logits], [(10, 10)], 0.7, 10, 10, 0.0, training=False)[0]
    assert kept["proposal_boxes"].tolist() == [[0, 0, 5, 5]]


def test_anchor_channels_follow_detectron_layout():
    # Two anchors per location (sizes 16, 32), a 1 x 2 grid with offset 0.5: at x = 1 (centre (24, 8)) anchor 1 is
    # [8, -8, 40, 24]. Its dx (channel 4 * 1 + 0) of 0.25 shifts it by 8 pixels; it has the best logit.
    rpn = RPN.from_config(rpn_cfg(sizes=((16, 32),), offset=0.5), INPUT_SHAPE).eval()
    logits = torch.full((1, 2, 1, 2), -1.0)
    logits[0, 1, 0, 1] = 3.0
    deltas = torch.zeros(1, 8, 1, 2)
    deltas[0, 4, 0, 1] = 0.25
    rpn.rpn_head = FixedHead(logits, deltas)
    proposals, losses = rpn([(64, 64)], {"res4": torch.zeros(1, 4, 1, 2)})
    assert losses == {}
    assert proposals[0]["proposal_boxes"][0].tolist() == [16, 0, 48, 24]
    assert proposals[0]["objectness_logits"][0].item() == 3.0
    assert len(proposals[0]["proposal_boxes"]) == 4


def test_levels_are_concatenated_in_feature_order():
    # p2 (stride 4, 8-pixel anchors, 2 x 2) then p3 (stride 8, 16-pixel anchors, 1 x 1), offset 0.5. The best
    # logit is p3's only anchor [-4, -4, 12, 12] -> clipped [0, 0, 12, 12]; next p2's location (y 1, x 0),
    # centre (2, 6): [-2, 2, 6, 10] -> [0, 2, 6, 10].
    cfg = rpn_cfg(sizes=((8,), (16,)), offset=0.5)
    cfg.MODEL.RPN.IN_FEATURES = ["p2", "p3"]
    rpn = RPN.from_config(cfg, {"p2": (4, 4), "p3": (4, 8)}).eval()
    p2_logits = torch.tensor([[[[-3.0, -2.0], [1.0, -4.0]]]])
    rpn.rpn_head = FixedHead(p2_logits, torch.zeros(1, 4, 2, 2), torch.full((1, 1, 1, 1), 2.0),
                             torch.zeros(1, 4, 1, 1))
    features = {"p2": torch.zeros(1, 4, 2, 2), "p3": torch.zeros(1, 4, 1, 1)}
    proposals, _ = rpn([(16, 16)], features)
    assert proposals[0]["objectness_logits"].tolist() == [2.0, 1.0, -2.0, -3.0, -4.0]
    assert proposals[0]["proposal_boxes"][:2].tolist() == [[0, 0, 12, 12], [0, 2, 6, 10]]


def test_train_and_test_top_k():
    torch.manual_seed(1)
    cfg = rpn_cfg(offset=0.5)
    cfg.MODEL.RPN.PRE_NMS_TOPK_TRAIN, cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 10, 7
    cfg.MODEL.RPN.PRE_NMS_TOPK_TEST, cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 5, 100
    rpn = RPN.from_config(cfg, INPUT_SHAPE)
    feature = torch.randn(1, 4, 4, 4)
    # 16 anchors of 32 pixels every 16 pixels overlap their neighbours by IoU <= 0.4 after clipping: NMS at 0.7
    # removes none, so the counts are the top-k values.
    train, _ = rpn.train()([(64, 64)], {"res4": feature}, [torch.tensor([[0.0, 0.0, 30.0, 30.0]])])
    test, _ = rpn.eval()([(64, 64)], {"res4": feature})
    assert len(train[0]["proposal_boxes"]) == 7 and len(test[0]["proposal_boxes"]) == 5
    for scores in (train[0]["objectness_logits"], test[0]["objectness_logits"]):
        assert torch.all(scores[:-1] >= scores[1:])
    with pytest.raises(ValueError, match="gt_boxes"):
        rpn.train()([(64, 64)], {"res4": feature})


# ---------------------------------------------------------------------------------------------------- the head

def test_standard_head_names_shapes_and_init():
    torch.manual_seed(0)
    head = StandardRPNHead(64, 3)
    shapes = {name: tuple(p.shape) for name, p in head.named_parameters()}
    assert shapes == {"conv.weight": (64, 64, 3, 3), "conv.bias": (64,),
                      "objectness_logits.weight": (3, 64, 1, 1), "objectness_logits.bias": (3,),
                      "anchor_deltas.weight": (12, 64, 1, 1), "anchor_deltas.bias": (12,)}
    # 36,864 draws of N(0, 0.01): the sample std is within 2 % of 0.01 with overwhelming probability.
    assert head.conv.weight.std().item() == pytest.approx(0.01, rel=0.02)
    assert all(torch.count_nonzero(m.bias) == 0 for m in (head.conv, head.objectness_logits, head.anchor_deltas))
    logits, deltas = head([torch.randn(2, 64, 5, 6), torch.randn(2, 64, 3, 3)])
    assert [tuple(x.shape) for x in logits] == [(2, 3, 5, 6), (2, 3, 3, 3)]
    assert [tuple(x.shape) for x in deltas] == [(2, 12, 5, 6), (2, 12, 3, 3)]


def test_detectron_c4_rpn_from_config():
    cfg = rpn_cfg(sizes=((32, 64, 128, 256, 512),), ratios=((0.5, 1.0, 2.0),), legacy=True)
    rpn = RPN.from_config(cfg, {"res4": (8, 16)})
    assert rpn.rpn_head.objectness_logits.out_channels == 15 and rpn.rpn_head.anchor_deltas.out_channels == 60
    anchors = rpn.anchor_generator([torch.zeros(1, 8, 1, 1)])[0]
    assert anchors[0].tolist() == [-15, -4, 30, 19] and anchors[14].tolist() == [-168, -344, 183, 359]
    assert rpn.box2box_transform.legacy_plus_one and rpn.legacy_plus_one


@pytest.mark.parametrize("key, value, named", [
    ("IN_FEATURES", ["p4"], "MODEL.RPN.IN_FEATURES"),
    ("HEAD_NAME", "CustomHead", "MODEL.RPN.HEAD_NAME"),
    ("IOU_LABELS", [0, 1], "MODEL.RPN.IOU_THRESHOLDS / IOU_LABELS"),
    ("BBOX_REG_WEIGHTS", (1.0, 1.0), "MODEL.RPN.BBOX_REG_WEIGHTS"),
    ("POSITIVE_FRACTION", 1.5, "MODEL.RPN.POSITIVE_FRACTION"),
    ("BBOX_REG_LOSS_TYPE", "giou", "MODEL.RPN.BBOX_REG_LOSS_TYPE"),
])
def test_bad_config_names_the_key(key, value, named):
    cfg = rpn_cfg()
    setattr(cfg.MODEL.RPN, key, value)
    with pytest.raises(ConfigError, match=re.escape(named)):
        RPN.from_config(cfg, INPUT_SHAPE)


def test_levels_must_share_channels_and_anchor_counts():
    cfg = rpn_cfg()
    cfg.MODEL.RPN.IN_FEATURES = ["p2", "p3"]
    with pytest.raises(ConfigError, match=re.escape("MODEL.RPN.IN_FEATURES")):
        RPN.from_config(cfg, {"p2": (4, 4), "p3": (8, 8)})
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[32], [64, 128]]
    with pytest.raises(ConfigError, match=re.escape("MODEL.ANCHOR_GENERATOR.SIZES / ASPECT_RATIOS")):
        RPN.from_config(cfg, {"p2": (4, 4), "p3": (4, 8)})


def test_bad_anchor_config_names_the_key():
    cfg = rpn_cfg(sizes=((32,), (64,)))
    with pytest.raises(ConfigError, match="MODEL.ANCHOR_GENERATOR"):
        RPN.from_config(cfg, INPUT_SHAPE)
    cfg = rpn_cfg(offset=1.0)
    with pytest.raises(ConfigError, match="MODEL.ANCHOR_GENERATOR"):
        RPN.from_config(cfg, INPUT_SHAPE)
