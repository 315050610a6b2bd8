"""The two-stage detector assembled: ROI sampling, Fast R-CNN losses and inference by hand, checkpoint layouts
(detectron2 .pth and .pkl, Caffe2 ImageNet blobs), the inference form, and bad input."""
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from posekit.config import load_cfg
from posekit.models import build_model, load_weights, prepare_for_inference
from posekit.models.detection.roi_heads import FastRCNNOutputLayers, StandardROIHeads
from posekit.models.detection.box_coder import Box2BoxTransform
from posekit.models.layers import ShapeSpec
from posekit.ops import reference
from posekit.structures import Instances
from posekit.utils.errors import CheckpointError, ConfigError

REPO = Path(__file__).resolve().parents[2]
TINY = str(REPO / "experiments" / "samples" / "detector_tiny_coco.yaml")
# The same tiny ResNet as a Detectron-style C4 detector (LCR-Net's conventions).
C4 = ["MODEL.BACKBONE.NAME", "build_resnet_backbone", "MODEL.RESNETS.OUT_FEATURES", "['res4']",
      "MODEL.RESNETS.NORM", "AffineChannel", "MODEL.LEGACY_PLUS_ONE", "True", "MODEL.RPN.IN_FEATURES", "['res4']",
      "MODEL.ANCHOR_GENERATOR.SIZES", "[[32, 64, 128, 256, 512]]", "MODEL.ROI_HEADS.NAME", "Res5ROIHeads",
      "MODEL.ROI_HEADS.IN_FEATURES", "['res4']", "MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION", "14",
      "MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO", "0"]


# A large pixel std keeps an untrained network's scores spread, so that it detects something to compare.
SPREAD = ["MODEL.PIXEL_STD", "[500.0, 500.0, 500.0]"]


def tiny_detector(*opts, seed=0):
    torch.manual_seed(seed)
    return build_model(load_cfg(TINY, list(opts))).eval()


def images(count=2, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return [{"image": torch.randint(0, 256, (3, 96, 128), generator=generator, dtype=torch.uint8),
             "height": 192, "width": 256} for _ in range(count)]


def randomise_statistics(model):
    """Non-trivial norm statistics, so that checkpoints and folding have something to get wrong."""
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith(("running_mean", "bias")) and buffer.is_floating_point():
                buffer.copy_(torch.rand(buffer.shape, generator=generator) * 0.2 - 0.1)
            elif name.endswith(("running_var", "weight")) and buffer.is_floating_point():
                buffer.copy_(torch.rand(buffer.shape, generator=generator) + 0.5)
    return model


def detections(model, inputs):
    with torch.no_grad():
        return [(o["instances"].pred_boxes, o["instances"].scores) for o in model(inputs)]


# ---------- ROI sampling and Fast R-CNN outputs, by hand ----------

def roi_heads(*opts):
    cfg = load_cfg(TINY, ["MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "4", *opts])
    shapes = {name: ShapeSpec(32, stride) for name, stride in zip(["p2", "p3", "p4", "p5"], [4, 8, 16, 32])}
    return StandardROIHeads(cfg, shapes)


def test_proposals_are_matched_with_the_ground_truth_appended_and_sampled():
    heads = roi_heads()
    proposals = Instances((100, 100), proposal_boxes=torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 9],
                                                                   [50, 50, 60, 60], [80, 80, 90, 90]]),
                          objectness_logits=torch.zeros(4))
    targets = Instances((100, 100), gt_boxes=torch.tensor([[0.0, 0, 10, 10]]), gt_classes=torch.tensor([0]))
    torch.manual_seed(0)
    sampled = heads.label_and_sample_proposals([proposals], [targets])[0]
    # 5 candidates (4 + the gt box); IoU with the gt: 1, 0.9, 0, 0, 1 -> 3 foreground (class 0), 2 background (1).
    # 4 ROIs at 25 % foreground: 1 foreground, 3 background wanted, but only 2 background exist.
    assert len(sampled) == 3
    assert sorted(sampled.gt_classes.tolist()) == [0, 1, 1]
    foreground = sampled[sampled.gt_classes == 0]
    assert torch.equal(foreground.gt_boxes, torch.tensor([[0.0, 0, 10, 10]]))
    background = sampled[sampled.gt_classes == 1].proposal_boxes
    assert sorted(background[:, 0].tolist()) == [50.0, 80.0]


def output_layers(**overrides):
    settings = dict(input_size=2, num_classes=1, box_transform=Box2BoxTransform((10.0, 10.0, 5.0, 5.0)),
                    smooth_l1_beta=0.0, box_loss_weight=1.0, class_agnostic=False, score_threshold=0.05,
                    nms_threshold=0.5, detections_per_image=100, legacy_plus_one=False)
    settings.update(overrides)
    return FastRCNNOutputLayers(**settings)


def test_fast_rcnn_losses_by_hand():
    layers = output_layers()
    proposals = Instances((100, 100), proposal_boxes=torch.tensor([[10.0, 10, 30, 50], [0, 0, 10, 10]]),
                          gt_boxes=torch.tensor([[12.0, 10, 32, 50], [0, 0, 10, 10]]),
                          gt_classes=torch.tensor([0, 1]))
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    deltas = torch.tensor([[0.5, 0.0, 0.0, 0.0], [9.0, 9.0, 9.0, 9.0]])
    losses = layers.losses((logits, deltas), [proposals])
    # Cross-entropy of the right class (margins 2 and 1), mean over both ROIs.
    expected = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1))) / 2
    assert losses["loss_cls"].item() == pytest.approx(expected, rel=1e-6)
    # Foreground ROI only: target dx = 10 * 2 / 20 = 1, predicted 0.5 -> L1 0.5; divided by 2 sampled ROIs.
    assert losses["loss_box_reg"].item() == pytest.approx(0.25, rel=1e-6)


def test_fast_rcnn_inference_thresholds_suppresses_and_caps():
    layers = output_layers(detections_per_image=2)
    boxes = torch.tensor([[10.0, 10, 50, 50], [11, 11, 51, 51], [60, 60, 90, 90], [0, 0, 5, 5]])
    proposals = Instances((100, 100), proposal_boxes=boxes)
    # Softmax person probabilities 0.9, 0.8, 0.7 and 0.01 (below the 0.05 threshold).
    probabilities = torch.tensor([0.9, 0.8, 0.7, 0.01])
    logits = torch.stack([torch.log(probabilities), torch.log(1 - probabilities)], dim=1)
    found = layers.inference((logits, torch.zeros(4, 4)), [proposals])[0]
    # Box 1 overlaps box 0 with IoU 1521/1679 > 0.5 and is suppressed; 2 of the remaining are kept.
    assert torch.allclose(found.scores, torch.tensor([0.9, 0.7]))
    assert torch.equal(found.pred_boxes, boxes[[0, 2]]) and found.pred_classes.tolist() == [0, 0]


# ---------- checkpoints ----------

@pytest.mark.parametrize("opts", [[], C4], ids=["fpn", "c4"])
@pytest.mark.parametrize("layout", ["detectron2 pth", "detectron2 zoo pkl"])
def test_detectron2_layouts_load_strictly_and_give_the_same_detections(tmp_path, opts, layout):
    trained = randomise_statistics(tiny_detector(*opts, *SPREAD, seed=1))
    state = trained.state_dict()
    path = tmp_path / ("model_final.pth" if layout.endswith("pth") else "model_final.pkl")
    if layout.endswith("pth"):
        torch.save({"model": state, "iteration": 7}, path)
    else:
        with open(path, "wb") as handle:
            pickle.dump({"model": {k: v.numpy() for k, v in state.items()}, "__author__": "Detectron2 Model Zoo"},
                        handle)
    fresh = tiny_detector(*opts, *SPREAD, seed=2)
    assert load_weights(fresh, str(path), strict=True) == []
    inputs = images()
    for (got_boxes, got_scores), (want_boxes, want_scores) in zip(detections(fresh, inputs), detections(trained, inputs)):
        assert len(want_scores) > 0  # something to compare
        assert torch.equal(got_boxes, want_boxes) and torch.equal(got_scores, want_scores)


def caffe2_blobs(resnet_state):
    """detectron2 ResNet names -> the MSRA Caffe2 blob names (the inverse rule, written out for the test)."""
    blobs = {}
    branch = {"shortcut": "branch1", "conv1": "branch2a", "conv2": "branch2b", "conv3": "branch2c"}
    for name, value in resnet_state.items():
        parts = name.split(".")
        if parts[0] == "stem":
            blob = {"weight": "conv1_w"}.get(parts[-1]) if parts[2] == "weight" else \
                {"weight": "res_conv1_bn_s", "bias": "res_conv1_bn_b"}.get(parts[-1])
        else:
            stage, block, conv = parts[0], parts[1], branch[parts[2]]
            suffix = "w" if parts[3] == "weight" else {"weight": "bn_s", "bias": "bn_b"}.get(parts[-1])
            blob = f"{stage}_{block}_{conv}_{suffix}" if suffix else None
        if blob:
            blobs[blob] = value.numpy()
    return blobs


@pytest.mark.parametrize("opts, body", [([], "backbone.bottom_up."), (C4, "backbone.")], ids=["fpn", "c4"])
def test_imagenet_caffe2_blobs_land_in_the_backbone(tmp_path, opts, body):
    source = randomise_statistics(tiny_detector(*opts, "MODEL.RESNETS.OUT_FEATURES", "['res5']",
                                                "MODEL.BACKBONE.NAME", "build_resnet_backbone",
                                                "MODEL.RPN.IN_FEATURES", "['res5']",
                                                "MODEL.ROI_HEADS.IN_FEATURES", "['res5']", seed=3)
                                  if opts else tiny_detector(seed=3))
    with torch.no_grad():  # norm scales and shifts unlike a fresh model's, so their blobs are checked too
        for name, value in list(source.named_parameters()) + list(source.named_buffers()):
            if ".norm." in name and name.endswith(("weight", "bias")):
                value.uniform_(0.5, 1.5)
    resnet = {k[len("backbone.bottom_up."):] if k.startswith("backbone.bottom_up.") else k[len("backbone."):]: v
              for k, v in source.state_dict().items() if k.startswith("backbone.") and "fpn" not in k}
    path = tmp_path / "R-50.pkl"
    with open(path, "wb") as handle:
        pickle.dump({"blobs": {**caffe2_blobs(resnet), "fc1000_w": np.zeros((1000, 4), np.float32)}}, handle)
    model = tiny_detector(*opts, seed=4)
    missing = load_weights(model, str(path), strict=False)
    state = model.state_dict()
    assert torch.equal(state[body + "stem.conv1.weight"], resnet["stem.conv1.weight"])
    assert torch.equal(state[body + "res3.0.conv2.norm.weight"], resnet["res3.0.conv2.norm.weight"])
    assert torch.equal(state[body + "res3.0.conv2.norm.bias"], resnet["res3.0.conv2.norm.bias"])
    res5 = "roi_heads.res5.0.conv1.weight" if opts else body + "res5.0.conv1.weight"
    assert torch.equal(state[res5], resnet["res5.0.conv1.weight"])
    assert not any(name.startswith(body + "res") for name in missing)  # only heads (and the FPN) stay untouched


def test_a_checkpoint_of_another_architecture_is_refused_by_name(tmp_path):
    path = tmp_path / "dekr.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 3, 3), "stage4.0.fuse_layers.0.1.0.weight": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match="dekr.pth does not fit the model.*missing keys.*unexpected keys"):
        load_weights(tiny_detector(), str(path), strict=True)


# ---------- inference form and configuration errors ----------

@pytest.mark.parametrize("opts", [[], C4], ids=["fpn", "c4"])
def test_inference_form_gives_the_same_detections(opts):
    model = randomise_statistics(tiny_detector(*opts, *SPREAD, "MODEL.RESNETS.NORM", "FrozenBN", seed=6)).double()
    inputs = images()
    want = detections(model, inputs)
    folded = prepare_for_inference(model, torch.device("cpu"))
    assert not any(type(m).__name__ in ("FrozenBatchNorm2d", "AffineChannel2d") for m in folded.modules())
    for (got_boxes, got_scores), (want_boxes, want_scores) in zip(detections(folded, inputs), want):
        assert len(want_scores) > 0  # something to compare
        torch.testing.assert_close(got_boxes, want_boxes, rtol=0, atol=1e-6)
        torch.testing.assert_close(got_scores, want_scores, rtol=0, atol=1e-9)


def test_configuration_errors_name_their_keys():
    with pytest.raises(ConfigError, match="MODEL.BACKBONE.NAME: unknown backbone 'build_vgg_backbone'"):
        tiny_detector("MODEL.BACKBONE.NAME", "build_vgg_backbone")
    with pytest.raises(ConfigError, match="MODEL.ROI_HEADS.NAME: unknown ROI heads 'CascadeROIHeads'"):
        tiny_detector("MODEL.ROI_HEADS.NAME", "CascadeROIHeads")


def test_an_image_without_people_gives_no_error():
    model = tiny_detector()
    blank = [{"image": torch.zeros(3, 64, 64, dtype=torch.uint8)}]
    found = detections(model, blank)[0]
    assert found[0].shape[1] == 4 and len(found[0]) == len(found[1])


# ---------- the whole inference against an independent float64 computation ----------

def reference_proposals(model, features, image_size):
    """detectron2's RPN at test time, written out: anchors, decoding, per-level top-k, clipping, per-level NMS."""
    rpn, head = model.proposal_generator, model.proposal_generator.rpn_head
    cfg_sizes, ratios = [32, 64, 128, 256, 512], [0.5, 1.0, 2.0]
    boxes, scores, levels = [], [], []
    for level, (name, stride, size) in enumerate(zip(["p2", "p3", "p4", "p5", "p6"], [4, 8, 16, 32, 64], cfg_sizes)):
        hidden = torch.relu(F.conv2d(features[name], head.conv.weight, head.conv.bias, padding=1))
        logits = F.conv2d(hidden, head.objectness_logits.weight, head.objectness_logits.bias)[0]
        deltas = F.conv2d(hidden, head.anchor_deltas.weight, head.anchor_deltas.bias)[0]
        anchors_per_cell, height, width = logits.shape
        cells = []
        for ratio in ratios:
            w = math.sqrt(size * size / ratio)
            cells.append([-w / 2, -w * ratio / 2, w / 2, w * ratio / 2])
        # Cell anchors are float32 numbers, as detectron2 makes them (then widened with the model).
        cells = torch.tensor(cells, dtype=torch.float32).double()
        ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
        shifts = torch.stack([xs, ys, xs, ys], dim=-1).reshape(-1, 1, 4).double() * stride
        anchors = (shifts + cells[None]).reshape(-1, 4)
        flat_logits = logits.permute(1, 2, 0).reshape(-1)
        flat_deltas = deltas.reshape(anchors_per_cell, 4, height, width).permute(2, 3, 0, 1).reshape(-1, 4)
        top = flat_logits.topk(min(len(flat_logits), rpn.pre_nms_topk[False])).indices
        boxes.append(decode(flat_deltas[top], anchors[top], (1.0, 1.0, 1.0, 1.0)))
        scores.append(flat_logits[top])
        levels.append(torch.full((len(top),), level))
    boxes, scores, levels = torch.cat(boxes), torch.cat(scores), torch.cat(levels)
    boxes = clip(boxes, image_size)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
    kept = torch.cat([torch.nonzero(levels == level).squeeze(1)[reference.nms(boxes[levels == level],
                                                                              scores[levels == level], 0.7)]
                      for level in range(5)])
    kept = kept[torch.sort(scores[kept], descending=True, stable=True).indices][:rpn.post_nms_topk[False]]
    return boxes[kept]


def decode(deltas, boxes, weights):
    widths, heights = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    ctr_x, ctr_y = boxes[:, 0] + 0.5 * widths, boxes[:, 1] + 0.5 * heights
    dx, dy = deltas[:, 0] / weights[0], deltas[:, 1] / weights[1]
    dw = (deltas[:, 2] / weights[2]).clamp(max=math.log(1000.0 / 16))
    dh = (deltas[:, 3] / weights[3]).clamp(max=math.log(1000.0 / 16))
    x, y, w, h = dx * widths + ctr_x, dy * heights + ctr_y, torch.exp(dw) * widths, torch.exp(dh) * heights
    return torch.stack([x - w / 2, y - h / 2, x + w / 2, y + h / 2], dim=1)


def clip(boxes, image_size):
    height, width = image_size
    return torch.stack([boxes[:, 0].clamp(0, width), boxes[:, 1].clamp(0, height),
                        boxes[:, 2].clamp(0, width), boxes[:, 3].clamp(0, height)], dim=1)


def reference_detections(model, item):
    """The FPN detector's inference on one item in float64, from the backbone's features on."""
    image = item["image"].double()[None]
    # The pixel mean is a float32 buffer widened with the model, as in detectron2.
    mean = torch.tensor([103.530, 116.280, 123.675], dtype=torch.float32).double().view(1, 3, 1, 1)
    normalized = (image - mean) / 500.0
    features = model.backbone(normalized)
    size = tuple(image.shape[-2:])
    proposals = reference_proposals(model, features, size)
    areas = (proposals[:, 2] - proposals[:, 0]) * (proposals[:, 3] - proposals[:, 1])
    levels = torch.floor(4 + torch.log2(torch.sqrt(areas) / 224 + 1e-8)).clamp(2, 5).long()
    pooled = torch.cat([reference.roi_align(features[f"p{level}"], torch.cat([torch.zeros(1), box])[None], (7, 7),
                                            1.0 / 2 ** level, 2, aligned=False)
                        for box, level in zip(proposals, levels.tolist())])
    heads = model.roi_heads
    hidden = torch.relu(heads.box_head.fc1(pooled.flatten(1)))
    hidden = torch.relu(heads.box_head.fc2(hidden))
    probabilities = torch.softmax(heads.box_predictor.cls_score(hidden), dim=1)[:, 0]
    boxes = clip(decode(heads.box_predictor.bbox_pred(hidden), proposals, (10.0, 10.0, 5.0, 5.0)), size)
    keep = probabilities > 0.05
    boxes, probabilities = boxes[keep], probabilities[keep]
    kept = reference.nms(boxes, probabilities, 0.5)[:100]
    scale = torch.tensor([item["width"] / size[1], item["height"] / size[0]] * 2, dtype=torch.float64)
    return clip(boxes[kept] * scale, (item["height"], item["width"])), probabilities[kept]


def test_fpn_detections_equal_an_independent_float64_computation():
    model = tiny_detector("MODEL.RESNETS.NORM", "FrozenBN", *SPREAD, seed=8).double()
    item = images(1, seed=9)[0]
    (boxes, scores), = detections(model, [item])
    with torch.no_grad():
        want_boxes, want_scores = reference_detections(model, item)
    assert 5 < len(want_scores) < 100  # random weights: many overlapping candidates, thinned by NMS
    torch.testing.assert_close(scores, want_scores, rtol=0, atol=1e-12)
    torch.testing.assert_close(boxes, want_boxes, rtol=0, atol=1e-9)
