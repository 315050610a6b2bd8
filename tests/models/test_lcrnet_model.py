"""LCR-Net's network (lcrnet.md 3): sizes for J=13, K=20, the pose output divided by 5, targets and losses against a
float64 brute force, the decode in original pixels, the release's checkpoint names, and bad configs."""
import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from posekit.config import load_cfg
from posekit.models import build_model, load_weights
from posekit.models.lcrnet import LCRNet
from posekit.structures import Instances
from posekit.utils.errors import CheckpointError, ConfigError

REPO = Path(__file__).resolve().parents[2]
RELEASED = str(REPO / "experiments" / "lcrnet" / "InTheWild-ResNet50.yaml")
TINY = str(REPO / "experiments" / "samples" / "lcrnet_tiny_h36m.yaml")
ANCHORS = np.load(REPO / "data" / "lcrnet" / "InTheWild-ResNet50_anchors.npz")["anchor_poses"].astype(np.float64)


def bottleneck_parameters(in_channels, inner, out_channels):
    """Conv weights of one MSRA bottleneck (no biases; AffineChannel holds buffers, not parameters)."""
    shortcut = in_channels * out_channels if in_channels != out_channels else 0
    return in_channels * inner + inner * inner * 9 + inner * out_channels + shortcut


def stage_parameters(blocks, in_channels, inner, out_channels):
    return bottleneck_parameters(in_channels, inner, out_channels) + \
        (blocks - 1) * bottleneck_parameters(out_channels, inner, out_channels)


@pytest.fixture(scope="module")
def released_model():
    torch.manual_seed(0)
    # 30 RoIs instead of 1000: the same network, a faster test.
    return build_model(load_cfg(RELEASED, ["MODEL.DEVICE", "cpu", "MODEL.RPN.POST_NMS_TOPK_TEST", "30"])).eval()


def test_released_network_sizes_and_outputs(released_model):
    predictor = released_model.roi_heads.box_predictor
    assert tuple(predictor.cls_score.weight.shape) == (21, 2048)
    assert tuple(predictor.pose_pred.weight.shape) == (1365, 2048)
    stem = 3 * 64 * 49
    body = stem + stage_parameters(3, 64, 64, 256) + stage_parameters(4, 256, 128, 512) + \
        stage_parameters(6, 512, 256, 1024)
    res5 = stage_parameters(3, 1024, 512, 2048)
    rpn = (1024 * 1024 * 9 + 1024) + (1024 * 15 + 15) + (1024 * 60 + 60)
    outputs = (2048 * 21 + 21) + (2048 * 1365 + 1365)
    assert sum(p.numel() for p in released_model.parameters()) == body + res5 + rpn + outputs == 35_809_909
    features = torch.randn(3, 2048, dtype=torch.float32)
    logits, deltas = predictor(features)
    assert logits.shape == (3, 21) and deltas.shape == (3, 1365)
    torch.testing.assert_close(deltas, predictor.pose_pred(features) / 5)


def test_the_model_outputs_every_class_pose_in_original_pixels():
    torch.manual_seed(0)
    # The released anchors (K = 20, J = 13) on the tiny network.
    model = build_model(load_cfg(TINY, ["MODEL.RPN.POST_NMS_TOPK_TEST", "20"])).eval()
    image = torch.randint(0, 256, (3, 128, 160), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    with torch.no_grad():
        found = model([{"image": image, "height": 256, "width": 320}])[0]["instances"]
    rois = len(found)
    assert rois > 0 and found.image_size == (256, 320)
    assert found.scores.shape == (rois, 21)
    torch.testing.assert_close(found.scores.sum(dim=1), torch.ones(rois))
    assert found.pred_pose2d.shape == (rois, 20, 13, 2) and found.pred_pose2d.dtype == torch.float64
    assert found.pred_pose3d.shape == (rois, 20, 13, 3)


def decode_by_hand(box, deltas, anchors):
    """Float64 decode of one RoI (lcrnet.md 3.8), written from the formula, class by class and joint by joint."""
    x1, y1, x2, y2 = box
    pose2d, pose3d = np.zeros((len(anchors), 13, 2)), np.zeros((len(anchors), 13, 3))
    for k in range(len(anchors)):
        slot = deltas[65 * (k + 1):65 * (k + 2)]
        for j in range(13):
            pose2d[k, j] = [x1 + (anchors[k, j] + slot[j]) * (x2 - x1),
                            y1 + (anchors[k, 13 + j] + slot[13 + j]) * (y2 - y1)]
            pose3d[k, j] = [anchors[k, 26 + j] + slot[26 + j], anchors[k, 39 + j] + slot[39 + j],
                            anchors[k, 52 + j] + slot[52 + j]]
    return pose2d, pose3d


def test_decode_uses_boxes_rescaled_to_the_original_image_without_clipping():
    torch.manual_seed(0)
    model = build_model(load_cfg(TINY)).eval()
    boxes = torch.tensor([[10.0, 20.0, 70.0, 150.0], [150.0, 0.0, 159.0, 119.0]])
    deltas = torch.randn(2, 1365, dtype=torch.float32) * 0.1
    detections = Instances((120, 160), pred_boxes=boxes, scores=torch.rand(2, 21), pose_deltas=deltas)
    result = model.to_original_size(detections, {"image": torch.zeros(3, 120, 160), "height": 300, "width": 400})
    scaled = boxes.double().numpy() * 2.5
    np.testing.assert_allclose(result.pred_boxes.numpy(), scaled)  # x2 = 397.5 > W - 1: not clipped
    for roi in range(2):
        pose2d, pose3d = decode_by_hand(scaled[roi], deltas[roi].double().numpy(), ANCHORS)
        np.testing.assert_allclose(result.pred_pose2d[roi].numpy(), pose2d, rtol=0, atol=1e-9)
        np.testing.assert_allclose(result.pred_pose3d[roi].numpy(), pose3d, rtol=0, atol=1e-12)


def test_losses_against_a_float64_brute_force():
    torch.manual_seed(0)
    predictor = build_model(load_cfg(TINY)).roi_heads.box_predictor
    generator = np.random.default_rng(3)
    # A person shaped like full-body anchor 1 in the box (40, 40, 160, 160), slightly perturbed.
    gt_pose = ANCHORS[0] + generator.normal(0, 0.02, 65)
    gt_pose[:26] = 40 + gt_pose[:26] * 120
    # Two images: RoIs around the person (foreground, class 0) and background RoIs (class 1 = NUM_CLASSES).
    boxes = torch.tensor([[42.0, 38, 161, 158], [40, 40, 160, 100], [0, 0, 30, 30], [100, 0, 140, 20]])
    image = Instances((200, 200), proposal_boxes=boxes, gt_classes=torch.tensor([0, 0, 1, 1]),
                      gt_poses=torch.tensor(np.stack([gt_pose] * 4)))
    other = Instances((200, 200), proposal_boxes=boxes[:1], gt_classes=torch.tensor([0]),
                      gt_poses=torch.tensor(gt_pose[None]))
    logits, raw = torch.randn(5, 21, dtype=torch.float64), torch.randn(5, 1365, dtype=torch.float64) * 0.05
    losses = predictor.losses((logits.float(), raw.float()), [image, other])

    rois = [(boxes[0], True), (boxes[1], True), (boxes[2], False), (boxes[3], False), (boxes[0], True)]
    labels, pose_loss = [], 0.0
    for row, (box, foreground) in enumerate(rois):
        if not foreground:
            labels.append(0)
            continue
        x1, y1, x2, y2 = box.double().numpy()
        normalised = gt_pose.copy()
        normalised[:13] = (gt_pose[:13] - x1) / (x2 - x1)
        normalised[13:26] = (gt_pose[13:26] - y1) / (y2 - y1)
        label = 1 + int(np.argmin([np.sqrt(((normalised - a) ** 2).sum()) for a in ANCHORS]))
        labels.append(label)
        diff = raw[row, 65 * label:65 * (label + 1)].numpy() - (normalised - ANCHORS[label - 1])
        pose_loss += np.where(np.abs(diff) < 1, 0.5 * diff ** 2, np.abs(diff) - 0.5).sum()
    # The whole-person RoI takes the full-body anchor, the RoI of the upper half its upper-body twin (1 + 10).
    assert labels == [1, 11, 0, 0, 1]
    log_probabilities = torch.log_softmax(logits, dim=1).numpy()
    cls_loss = -np.mean([log_probabilities[row, label] for row, label in enumerate(labels)])
    assert losses["loss_cls"].item() == pytest.approx(cls_loss, rel=1e-5)
    assert losses["loss_pose"].item() == pytest.approx(pose_loss / 5, rel=1e-5)


def official_names(model):
    """The release's Detectron.pytorch names (lcrnet.md 3.9) for every entry of ``model``'s state dict, enumerated
    from the spec's list rather than from posekit's rules."""
    names = {"backbone.stem.conv1.weight": "Conv_Body.res1.conv1.weight",
             "backbone.stem.conv1.norm.weight": "Conv_Body.res1.bn1.weight",
             "backbone.stem.conv1.norm.bias": "Conv_Body.res1.bn1.bias"}
    stages = [("backbone", "Conv_Body", stage, blocks) for stage, blocks in ((2, 3), (3, 4), (4, 6))]
    for ours, theirs, stage, blocks in stages + [("roi_heads", "Box_Head", 5, 3)]:
        for block in range(blocks):
            base, official = f"{ours}.res{stage}.{block}", f"{theirs}.res{stage}.{block}"
            for conv in (1, 2, 3):
                names[f"{base}.conv{conv}.weight"] = f"{official}.conv{conv}.weight"
                for kind in ("weight", "bias"):
                    names[f"{base}.conv{conv}.norm.{kind}"] = f"{official}.bn{conv}.{kind}"
            if block == 0:
                names[f"{base}.shortcut.weight"] = f"{official}.downsample.0.weight"
                for kind in ("weight", "bias"):
                    names[f"{base}.shortcut.norm.{kind}"] = f"{official}.downsample.1.{kind}"
    for kind in ("weight", "bias"):
        for ours, theirs in (("conv", "RPN_conv"), ("objectness_logits", "RPN_cls_score"),
                             ("anchor_deltas", "RPN_bbox_pred")):
            names[f"proposal_generator.rpn_head.{ours}.{kind}"] = f"RPN.{theirs}.{kind}"
        for layer in ("cls_score", "pose_pred"):
            names[f"roi_heads.box_predictor.{layer}.{kind}"] = f"Pose_Outs.{layer}.{kind}"
    return names


def test_release_checkpoint_names_cover_the_released_network(released_model):
    own = released_model.state_dict()
    names = official_names(released_model)
    assert sorted(names) == sorted(own)  # every entry has an official name: strict both ways
    assert tuple(own["proposal_generator.rpn_head.objectness_logits.weight"].shape) == (15, 1024, 1, 1)
    assert tuple(own["proposal_generator.rpn_head.anchor_deltas.weight"].shape) == (60, 1024, 1, 1)


def test_a_release_checkpoint_loads_strictly(tmp_path):
    # The tiny network with the release's norms has its module names with fewer channels: a small file.
    torch.manual_seed(0)
    model = build_model(load_cfg(TINY, ["MODEL.RESNETS.NORM", "AffineChannel"]))
    names = official_names(model)
    generator = torch.Generator().manual_seed(7)
    official = {names[key]: torch.rand(value.shape, generator=generator) for key, value in model.state_dict().items()}
    path = tmp_path / "release_model.pth"
    torch.save(official, path)
    load_weights(model, str(path), strict=True)
    loaded = model.state_dict()
    for key, name in names.items():
        assert torch.equal(loaded[key], official[name]), key

    torch.save({**official, "Pose_Outs.bbox_pred.weight": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match="Pose_Outs.bbox_pred.weight"):
        load_weights(model, str(path), strict=True)
    del official["Pose_Outs.pose_pred.bias"]
    torch.save(official, path)
    with pytest.raises(CheckpointError, match="missing keys: roi_heads.box_predictor.pose_pred.bias"):
        load_weights(model, str(path), strict=True)


def test_ppi_settings_come_from_the_anchor_file_unless_the_config_overrides_them():
    torch.manual_seed(0)
    model = build_model(load_cfg(TINY, ["MODEL.LCRNET.PPI.TH_IOU", "0.3", "MODEL.LCRNET.PPI.GROUPING_BOXES", "pose"]))
    assert isinstance(model, LCRNet)
    kwargs = model.ppi.kwargs
    # InTheWild-ResNet50's ppi_params (lcrnet.md 4.3), K_full = 10 of the K = 20 anchors.
    assert kwargs["th_pose3d"] == 0.04 and kwargs["iou_func"] == "bbox_torsohead" and kwargs["th_persondetect"] == 0.5
    assert kwargs["th_iou"] == 0.3 and kwargs["grouping_boxes"] == "pose" and kwargs["num_full_body_classes"] == 10
    assert kwargs["min_proposals"] == 500 and kwargs["score_threshold"] is None
    pitfall = build_model(load_cfg(TINY, ["MODEL.LCRNET.PPI.RELEASE_K_PITFALL", "True"]))
    assert pitfall.ppi.kwargs["num_full_body_classes"] == 20


@pytest.mark.parametrize("opts, message", [
    (["MODEL.LCRNET.NUM_JOINTS", "17"], r"InTheWild-ResNet50_anchors.npz: anchor poses of shape \(20, 65\)"),
    (["MODEL.LCRNET.NUM_ANCHOR_POSES", "100"], "NUM_ANCHOR_POSES 100"),
    (["MODEL.ROI_HEADS.NUM_CLASSES", "2"], "NUM_CLASSES: LCR-Net's detector has one class"),
    (["MODEL.LCRNET.PPI.GROUPING_BOXES", "nms"], "GROUPING_BOXES: expected one of pose, roi"),
    (["MODEL.LCRNET.PPI.IOU_FUNC", "boxes"], "IOU_FUNC: expected one of bbox, bbox_torsohead"),
    (["MODEL.LCRNET.ANCHORS_FILE", "data/lcrnet/missing_anchors.npz"], "anchor file not found"),
])
def test_bad_configs_fail_naming_the_key(opts, message):
    with pytest.raises(ConfigError, match=message):
        build_model(load_cfg(TINY, opts))


@pytest.mark.parametrize("relative, anchors", [
    ("lcrnet/InTheWild-ResNet50.yaml", "InTheWild-ResNet50"),
    ("lcrnet/DEMO_ECCV18.yaml", "DEMO_ECCV18"),
    ("h36m/lcrnet_R_50_C4_h36m.yaml", "InTheWild-ResNet50"),
])
def test_config_files_carry_the_released_values(relative, anchors):
    """The values of the released cfg stored with the anchors (data/lcrnet/<name>_anchors.json, lcrnet.md 3)."""
    released = json.loads((REPO / "data" / "lcrnet" / f"{anchors}_anchors.json").read_text())["cfg"]
    cfg = load_cfg(str(REPO / "experiments" / relative))
    assert cfg.FAMILY == "lcrnet" and cfg.MODEL.META_ARCHITECTURE == "LCRNet"
    assert cfg.MODEL.LCRNET.ANCHORS_FILE == f"data/lcrnet/{anchors}_anchors.npz"
    if relative.startswith("lcrnet/"):  # the released test settings
        assert (cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST) == (released["TEST"]["SCALE"],
                                                                      released["TEST"]["MAX_SIZE"])
        assert (cfg.MODEL.RPN.PRE_NMS_TOPK_TEST, cfg.MODEL.RPN.POST_NMS_TOPK_TEST) == (
            released["TEST"]["RPN_PRE_NMS_TOP_N"], released["TEST"]["RPN_POST_NMS_TOP_N"])
    train = released["TRAIN"]
    scales = tuple(ast.literal_eval(train["SCALES"]))
    assert (cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN) == (scales, train["MAX_SIZE"])
    assert cfg.MODEL.ROI_HEADS.IOU_THRESHOLDS == [train["FG_THRESH"]] == [train["BG_THRESH_HI"]]
    assert (cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE, cfg.SOLVER.IMS_PER_BATCH) == (train["BATCH_SIZE_PER_IM"],
                                                                                    train["IMS_PER_BATCH"])
    assert cfg.INPUT.RANDOM_FLIP == ("horizontal" if train["USE_FLIPPED"] else "none")
    solver = released["SOLVER"]
    assert (cfg.SOLVER.BASE_LR, cfg.SOLVER.MAX_ITER, cfg.SOLVER.GAMMA, cfg.SOLVER.WEIGHT_DECAY) == (
        solver["BASE_LR"], solver["MAX_ITER"], solver["GAMMA"], solver["WEIGHT_DECAY"])
    assert [0, *cfg.SOLVER.STEPS] == [int(step) for step in solver["STEPS"].split(",")]
    assert (cfg.MODEL.RESNETS.NORM, cfg.MODEL.LEGACY_PLUS_ONE, cfg.MODEL.ROI_BOX_HEAD.POOLER_TYPE) == (
        "AffineChannel", True, "ROIAlign")
    assert cfg.MODEL.LCRNET.NUM_ANCHOR_POSES + 1 == released["MODEL"]["NUM_CLASSES"]
