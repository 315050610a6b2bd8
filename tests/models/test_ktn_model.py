"""KTN / KTNv2 networks: every shipped configuration's parameter count against a formula (built on the meta
device: the KTM MLPs alone are 134 M / 210 M parameters), official checkpoint names, inference outputs."""
import functools
from pathlib import Path

import numpy as np
import pytest
import torch

from posekit.apis.densepose import DensePoseEstimator
from posekit.apis.densepose.apply_net import people_arrays
from posekit.config import family_of, load_cfg
from posekit.models import build_model
from posekit.models.ktn import export_keypoint_classifier, mask_foreground_logits
from posekit.structures import Instances

pytestmark = pytest.mark.usefixtures("one_thread")
EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
# Input files the meta-device builds do without (the structure does not depend on them).
NO_FILES = [f"MODEL.ROI_DENSEPOSE_HEAD.{key}" for key in (
    "KPT_SURF_RELATION_DIR", "PART_SURF_RELATION_DIR", "BBOX_SURF_RELATION_DIR", "KPT_CLASSIFIER_WEIGHT_DIR")]
BRANCH = ("roi_heads.decoder.", "roi_heads.densepose_head.", "roi_heads.densepose_predictor.")


def conv(cin, cout, k, bias=True):
    return cin * cout * k * k + (cout if bias else 0)


def linear(cin, cout):
    return cin * cout + cout


GN = 2 * 256  # GroupNorm(32, 256) scale and shift


def mid_v1(levels=4):
    """Per level max(1, l) 3x3 convs (l = 0 for stride 4), 1x1 predictor."""
    return sum(max(1, l) for l in range(levels)) * conv(256, 256, 3) + conv(256, 256, 1)


def mid_v2(levels=4):
    """FA convs between levels; per level max(1, l) x [3x3 conv (+ 1x1 C -> 4C above stride 4)]; trident; 1x1."""
    top_down = conv(256, 256, 3) + sum(l * (conv(256, 256, 3) + conv(256, 1024, 1)) for l in range(1, levels))
    trident = conv(256, 256, 1, False) + GN + 3 * (conv(256, 256, 3, False) + GN)
    return (levels - 1) * conv(1024, 256, 3) + top_down + trident + conv(1024, 256, 1)


V1CONVX = conv(256, 512, 3) + 7 * conv(512, 512, 3)
KTN_HEAD = (256 * 256 * 9 + 3 * GN + conv(256, 256, 1, False) + GN + conv(1024, 256, 1, False)  # ScaleConvs
            + conv(256, 512, 3, False) + 1024 + 7 * (conv(512, 512, 3, False) + 1024))
DECONV = {n: 512 * n * 16 + n for n in (2, 15, 17, 25)}  # transposed convs k4 512 -> n
KEYPOINT_PRETRAINING = DECONV[17]
RCNN_STAR = 3 * DECONV[25] + DECONV[2]
KTM_V1 = 2 * DECONV[25] + DECONV[2] + 2 * linear(8192, 8192) + 25 * 17 + DECONV[17]
KTM_V2 = (2 * DECONV[25] + DECONV[2] + DECONV[15] + DECONV[17] + 25 * (17 + 15 + 6)
          + linear(8192 + 1024 + 8192, 8192) + linear(8192, 8192))
BRANCHES = {
    "densepose_coco/densepose_R_50_FPN_KTN_net_s1x.yaml": mid_v1() + V1CONVX + KTM_V1,
    "densepose_coco/densepose_R_50_FPN_MID_net_s1x.yaml": mid_v1() + V1CONVX + RCNN_STAR,
    "densepose_coco/densepose_R_50_FPN_Kpt_Weight_Transfer_s1x.yaml": V1CONVX + KTM_V1,
    "densepose_coco/densepose_kpt_R_50_FPN_s1x.yaml": V1CONVX + KEYPOINT_PRETRAINING,
    "densepose_coco/densepose_kpt_R_50_FPN_MID_s1x.yaml": mid_v1() + V1CONVX + KEYPOINT_PRETRAINING,
    "densepose_coco/densepose_kpt_R_50_MIDv2_s1x.yaml": mid_v2() + KTN_HEAD + KEYPOINT_PRETRAINING,
    "densepose_coco/densepose_rcnn_R_50_KTNv2.yaml": mid_v2() + KTN_HEAD + KTM_V2,
    "densepose_coco/densepose_rcnn_HRFPN_w32_KTNv2.yaml": mid_v2(5) + KTN_HEAD + KTM_V2,
    "densepose_coco/densepose_rcnn_R_50_MIDv2.yaml": mid_v2() + V1CONVX + RCNN_STAR,
    "densepose_coco/densepose_rcnn_R_50_KTMv2.yaml": V1CONVX + KTM_V2,
    "ultrapose/densepose_rcnn_R_50_KTNv2.yaml": mid_v2() + KTN_HEAD + KTM_V2,
}
# The detectors under the branches, counted from DensePose R-CNN's own files with the branch off.
DETECTORS = {"build_resnet_fpn_backbone": "densepose_coco/densepose_rcnn_R_50_FPN_s1x.yaml",
             "build_hrfpn_backbone": "densepose_coco/densepose_rcnn_HRFPN_HRNet_w32_s1x.yaml"}


def meta_model(relative, *opts):
    cfg = load_cfg(str(EXPERIMENTS / relative), list(opts))
    if family_of(cfg).name == "ktn":
        cfg = load_cfg(str(EXPERIMENTS / relative), [v for key in NO_FILES for v in (key, "")] + list(opts))
    with torch.device("meta"):
        return cfg, build_model(cfg)


def test_every_ktn_file_is_pinned():
    shipped = {str(p.relative_to(EXPERIMENTS)) for folder in ("densepose_coco", "ultrapose")
               for p in (EXPERIMENTS / folder).glob("*.yaml")
               if family_of(load_cfg(str(p))).name == "ktn"}
    assert shipped == set(BRANCHES)


@pytest.mark.parametrize("relative", sorted(BRANCHES))
def test_parameter_count_of_each_configuration(relative):
    cfg, model = meta_model(relative)
    counts = {"branch": 0, "detector": 0}
    for name, param in model.named_parameters():
        counts["branch" if name.startswith(BRANCH) else "detector"] += param.numel()
    assert counts["branch"] == BRANCHES[relative]
    assert counts["detector"] == detector_parameters(cfg.MODEL.BACKBONE.NAME)


@functools.lru_cache(maxsize=None)
def detector_parameters(backbone):
    _, detector = meta_model(DETECTORS[backbone], "MODEL.DENSEPOSE_ON", "False")
    return sum(p.numel() for p in detector.parameters())


def test_ktm_mlps_are_the_published_sizes():
    assert 2 * linear(8192, 8192) == 134_234_112  # "about 134 M" (densepose.md 3.4)
    assert linear(17408, 8192) + linear(8192, 8192) == 209_731_584  # "about 210 M" (3.5)


TINY = {"ktn": str(EXPERIMENTS / "samples/ktn_tiny.yaml"), "ktnv2": str(EXPERIMENTS / "samples/ktnv2_tiny.yaml")}


def tiny(name, *opts, seed=0):
    torch.manual_seed(seed)
    return build_model(load_cfg(TINY[name], list(opts)), is_train=False).eval()


def official_names(model):
    """The model's state dict under the official KTN / KTNv2 names (densepose.md 12)."""
    official = {}
    for name, value in model.state_dict().items():
        official[name.replace("roi_heads.decoder.", "roi_heads.mid_decoder.")] = value.clone()
        if ".ScaleConvs." in name:  # KTNv2 registers the module twice
            official[name.replace(".ScaleConvs.", ".ScaleConv.")] = value.clone()
    official["roi_heads.keypoint_head.conv_fcn1.weight"] = torch.zeros(3)  # KTNv2's never-trained head
    return official


@pytest.mark.parametrize("name, mine", [
    ("ktnv2", ["roi_heads.densepose_predictor.kpt_crgk_matrix", "roi_heads.densepose_predictor.bbox_crgk_matrix",
               "roi_heads.densepose_predictor.part_crgk_matrix", "roi_heads.densepose_predictor.parameter_transformer.0.weight",
               "roi_heads.densepose_predictor.k_lowres.weight", "roi_heads.densepose_predictor.ann_index_lowres.weight",
               "roi_heads.densepose_predictor.m_lowres.weight", "roi_heads.densepose_head.ScaleConvs.weight",
               "roi_heads.densepose_head.body_conv_fcn8.norm.bias", "roi_heads.decoder.bottom_up_p2.adt_conv.weight",
               "roi_heads.decoder.trident_convs.3.0.weight"]),
    ("ktn", ["roi_heads.densepose_predictor.body_kpt_weight", "roi_heads.densepose_predictor.body_kpt_bias",
             "roi_heads.densepose_predictor.kpt_surface_transfer_matrix",
             "roi_heads.densepose_predictor.kpt_surface_transformer.2.weight", "roi_heads.densepose_predictor.u_lowres.bias",
             "roi_heads.densepose_head.body_conv_fcn8.bias", "roi_heads.decoder.p5.4.weight"])])
def test_a_checkpoint_with_the_official_names_loads_strictly(tmp_path, name, mine):
    source, target = tiny(name, seed=1), tiny(name, seed=2)
    assert set(mine) <= set(target.state_dict())
    official = official_names(source)
    assert any(".mid_decoder." in key for key in official)
    path = tmp_path / "official.pth"
    torch.save({"model": official}, path)
    from posekit.models import load_weights
    load_weights(target, str(path), strict=True)
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_keypoint_pretraining_checkpoint_initialises_ktnv2s_keypoint_classifier(tmp_path):
    pretraining = tiny("ktnv2", "MODEL.DENSEPOSE_ON", "False", seed=3)
    state = {k.replace("densepose_predictor.", "keypoint_predictor."): v for k, v in pretraining.state_dict().items()}
    path = tmp_path / "R50-MIDv2-kpt.pth"
    torch.save(state, path)
    model = tiny("ktnv2", seed=4)
    from posekit.models import load_weights
    load_weights(model, str(path), strict=False)
    assert torch.equal(model.roi_heads.densepose_predictor.k_lowres.weight,
                       pretraining.roi_heads.densepose_predictor.predictor[0].weight)
    assert torch.equal(model.roi_heads.decoder.predictor.weight, pretraining.roi_heads.decoder.predictor.weight)
    # ... and its export is KTM v1's classifier file.
    classifier = export_keypoint_classifier(path, tmp_path / "kpt_classifier.npz")
    with np.load(classifier) as arrays:
        assert np.array_equal(arrays["kpt_weight"], pretraining.roi_heads.densepose_predictor.predictor[0].weight.detach().numpy())
        assert arrays["kpt_bias"].shape == (17,)


def test_mask_foreground_is_the_softmax_threshold_before_and_after_resizing():
    generator = torch.Generator().manual_seed(0)
    body_mask = torch.randn(2, 2, 5, 5, generator=generator) * 3
    for threshold in (0.3, 0.5, 0.7):
        encoded = mask_foreground_logits(body_mask, threshold)
        assert torch.equal(encoded.argmax(dim=1) > 0, torch.softmax(body_mask, dim=1)[:, 1] > threshold)
        resize = lambda x: torch.nn.functional.interpolate(x, (9, 7), mode="bilinear", align_corners=False)  # noqa: E731
        probability = torch.softmax(resize(body_mask), dim=1)[:, 1]
        margin_ok = (probability - threshold).abs() > 1e-5  # away from float ties
        assert torch.equal((resize(encoded).argmax(dim=1) > 0)[margin_ok], (probability > threshold)[margin_ok])


def random_image(seed=0, size=(3, 128, 160)):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, size, dtype=torch.uint8, generator=generator)


@pytest.mark.parametrize("name", ["ktn", "ktnv2"])
def test_inference_attaches_charts_and_keypoints_in_original_image_pixels(name):
    model = tiny(name)
    image = random_image()
    boxes = torch.tensor([[10.0, 20.0, 90.0, 120.0], [40.5, 8.25, 72.0, 60.0]])
    with torch.no_grad():
        images, sizes = model.preprocess([{"image": image}])
        detections = [Instances(sizes[0], pred_boxes=boxes, scores=torch.tensor([0.9, 0.8]),
                                pred_classes=torch.zeros(2, dtype=torch.long))]
        model.roi_heads.forward_branches(model.backbone(images), detections)
    found = model.to_original_size(detections[0], {"image": image, "height": 256, "width": 320})
    assert found.pred_densepose_coarse_segm.shape == (2, 2, 56, 56)  # the foreground of M
    assert found.pred_densepose_fine_segm.shape == (2, 25, 56, 56)
    keypoints = found.pred_keypoints
    assert keypoints.shape == (2, 17, 3)
    # Decoded inside each box, then scaled with it to the original size (x2 here).
    scaled = found.pred_boxes
    assert torch.equal(scaled, boxes * 2)
    assert (keypoints[..., 0] > scaled[:, None, 0]).all() and (keypoints[..., 0] < scaled[:, None, 2]).all()
    assert (keypoints[..., 1] > scaled[:, None, 1]).all() and (keypoints[..., 1] < scaled[:, None, 3]).all()
    people = DensePoseEstimator.results(found)
    assert [p["keypoints"].shape for p in people] == [(17, 3), (17, 3)] and people[0]["keypoints"].dtype == np.float32
    assert people[1]["labels"].shape == (103, 63)  # the chart result over the scaled box, as before
    dumped = people_arrays(people)  # tools/apply_net.py dump keeps them
    assert np.array_equal(dumped["keypoints"], np.stack([p["keypoints"] for p in people]))


def test_detections_keypoints_are_scaled_like_their_boxes():
    model = tiny("ktn")
    found = Instances((100, 200), pred_boxes=torch.tensor([[10.0, 20.0, 50.0, 60.0]]),
                      pred_keypoints=torch.tensor([[[15.0, 25.0, 0.7]]]))
    scaled = model.to_original_size(found, {"image": torch.zeros(3, 100, 200), "height": 300, "width": 400})
    assert scaled.pred_boxes.tolist() == [[20.0, 60.0, 100.0, 180.0]]
    assert scaled.pred_keypoints.tolist() == [[[30.0, 75.0, pytest.approx(0.7)]]]
