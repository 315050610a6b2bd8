"""AMANet networks: every shipped configuration's DensePose-branch parameter count against a formula (built on
the meta device), official checkpoint names, and AMAv2's predictions in DensePose R-CNN's format."""
import functools
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from posekit.apis.densepose import DensePoseEstimator
from posekit.config import family_of, load_cfg
from posekit.models import build_model, load_weights
from posekit.structures import Instances
from posekit.utils.errors import CheckpointError

pytestmark = pytest.mark.usefixtures("one_thread")

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
BRANCH = ("roi_heads.densepose_head.", "roi_heads.densepose_predictor.", "roi_heads.dp_semseg_head.")


def conv(cin, cout, k, bias=True):
    return cin * cout * k * k + (cout if bias else 0)


def linear(cin, cout):
    return cin * cout + cout


def ama_head(c):
    """Shared 8-conv stack, three shared deconvolutions, 4 x (fc1, att), static, dynamic and fusing convs."""
    return (conv(256, c, 3) + 7 * conv(c, c, 3) + 3 * conv(c, c, 4) + 8 * linear(c, c) + conv(4 * c, c, 3)
            + conv(c, c, 3) + conv(2 * c, c, 1))


def heads(c, *channels):
    return sum(conv(c, n, 3) for n in channels)


def ama_v1(c, keypoints=0):
    """Embedding, S I U V M (K) and two intermediate S I U V M sets."""
    return conv(c, c, 3) + heads(c, 15, 25, 25, 25, 2) + (conv(c, 17, 3) if keypoints else 0) \
        + 2 * heads(c, 15, 25, 25, 25, 2)


D = 256 * 9  # a 3x3 kernel row of the 256-channel head
AMA_V2 = (conv(256, 256, 3) + heads(256, 15, 25, 25, 25, 2, 17) + 25 * (6 + 15 + 17) + linear(1024, D)
          + linear(D, D) + 2 * linear(D, D) + conv(75, 25, 1) + 8 * linear(D, D) + linear(D, D)
          + 2 * heads(256, 15, 25, 25, 2))
RELATION_PARTS = (conv(256, 256, 3) + heads(256, 15, 25, 25, 2) + conv(256, 17, 3) + 25 * 17 + 2 * linear(D, D)
                  + 2 * heads(256, 15, 25, 25, 25, 2))


def semseg(dims):
    """Panoptic-FPN head on P2..P5: 1 + 1 + 2 + 3 convs, 1x1 to person / background."""
    return 4 * conv(256, dims, 3) + 3 * conv(dims, dims, 3) + conv(dims, 2, 1)


BRANCHES = {
    "densepose_coco/densepose_AMA_R_50_FPN_s1x.yaml": ama_head(256) + AMA_V2,
    "densepose_coco/ama_v1/densepose_AMA_R_50_FPN_s1x.yaml": ama_head(256) + ama_v1(256),
    "densepose_coco/ama_v1/densepose_SemSegAMA_R_50_FPN_s1x.yaml": ama_head(512) + ama_v1(512) + semseg(128),
    "densepose_coco/ama_v1/densepose_SemSegAMA_IA_R_50_FPN_s1x.yaml": ama_head(512) + ama_v1(512) + semseg(128),
    "densepose_coco/ama_v1/densepose_SemSegAMA_IA_3xDeConv_R_50_FPN_s1x.yaml":
        ama_head(256) + ama_v1(256) + semseg(128),
    "densepose_coco/ama_v1/densepose_SemSegAMA_IA_3xDeConv_kpt_R_50_FPN_s1x.yaml":
        ama_head(256) + ama_v1(256, keypoints=17) + semseg(256),
    "densepose_coco/ama_v1/densepose_SemSegAMA_IA_3xDeConv_relation_parts_R_50_FPN_s1x.yaml":
        ama_head(256) + RELATION_PARTS,
}
# The whole AMAv2 network (with its ResNet-50-FPN detector): the README's number.
AMA_V2_TOTAL = 120_012_778


def kpt_classifier(tmp_path):
    """A relation-parts keypoint classifier file of the right shapes (only its shapes matter here)."""
    path = tmp_path / "kpt_classifier.pkl"
    arrays = {"kpt_weight": np.zeros((17, 256, 3, 3), np.float32), "kpt_bias": np.zeros(17, np.float32),
              "emb_weight": np.zeros((256, 256, 3, 3), np.float32), "emb_bias": np.zeros(256, np.float32)}
    with open(path, "wb") as handle:
        pickle.dump(arrays, handle)
    return str(path)


def test_every_amanet_file_is_pinned():
    shipped = {str(p.relative_to(EXPERIMENTS)) for p in (EXPERIMENTS / "densepose_coco").rglob("*.yaml")
               if not p.name.startswith("Base-") and family_of(load_cfg(str(p))).name == "amanet"}
    assert shipped == set(BRANCHES)


@pytest.mark.parametrize("relative", sorted(BRANCHES))
def test_parameter_count_of_each_configuration(relative, tmp_path):
    cfg = load_cfg(str(EXPERIMENTS / relative),
                   ["MODEL.ROI_DENSEPOSE_HEAD.KPT_CLASSIFIER_WEIGHT_DIR", kpt_classifier(tmp_path)])
    with torch.device("meta"):
        model = build_model(cfg)
    branch = sum(p.numel() for name, p in model.named_parameters() if name.startswith(BRANCH))
    assert branch == BRANCHES[relative]
    # The detector under the branch is DensePose R-CNN's ResNet-50-FPN one.
    assert sum(p.numel() for p in model.parameters()) == branch + detector_parameters()
    if relative == "densepose_coco/densepose_AMA_R_50_FPN_s1x.yaml":
        assert branch + detector_parameters() == AMA_V2_TOTAL


@functools.lru_cache(maxsize=None)
def detector_parameters():
    cfg = load_cfg(str(EXPERIMENTS / "densepose_coco/densepose_rcnn_R_50_FPN_s1x.yaml"), ["MODEL.DENSEPOSE_ON", "False"])
    with torch.device("meta"):
        return sum(p.numel() for p in build_model(cfg).parameters())


def test_relation_parts_config_without_its_classifier_file_names_it():
    cfg = load_cfg(str(EXPERIMENTS / "densepose_coco/ama_v1/"
                       "densepose_SemSegAMA_IA_3xDeConv_relation_parts_R_50_FPN_s1x.yaml"))
    with pytest.raises(CheckpointError, match="KPT_CLASSIFIER_WEIGHT_DIR: model/amanet/kpt_classifier.pkl: keypoint "
                                          "classifier file not found"), torch.device("meta"):
        build_model(cfg)


TINY = str(EXPERIMENTS / "samples/amanet_tiny.yaml")


def tiny(seed, *opts):
    torch.manual_seed(seed)
    return build_model(load_cfg(TINY, list(opts)), is_train=False).eval()


# AMAv2's DensePose-branch names in AMANet-pytorch checkpoints (densepose.md 12), without the "roi_heads." prefix.
OFFICIAL_HEAD = ([f"body_conv_fcn{k}.{p}" for k in range(1, 9) for p in ("weight", "bias")]
                 + [f"deconv_p{k}.0.{p}" for k in (1, 2, 3) for p in ("weight", "bias")]
                 + [f"{name}_levels_{k}.{p}" for name in ("fc1", "att") for k in range(1, 5) for p in ("weight", "bias")]
                 + [f"{name}.{p}" for name in ("ama_static_conv_emb", "ama_dynamic_conv_emb",
                                               "instance_embedding_layer1") for p in ("weight", "bias")])
OFFICIAL_V2 = ([f"{name}.{p}" for name in ("dp_emb_layer", "ann_index_layer", "u_layer", "v_layer", "i_layer",
                                             "m_layer", "k_layer", "bbox_surface_convertor.0", "bbox_surface_convertor.2",
                                             "part_surface_convertor.0", "kpt_surface_convertor.0", "param_aggregator.0",
                                             "param_predictor")
                for p in ("weight", "bias")]
               + [f"{block}.linear_{x}.{p}" for block in ("parameter_encoder", "parameter_decoder")
                  for x in ("k", "v", "q", "final") for p in ("weight", "bias")]
               + [f"{kind}_surface_transfer_matrix" for kind in ("bbox", "part", "kpt")]
               + [f"{kind}_inter_body_conv_fcn{k}.{p}" for kind in ("ann_index", "u", "v", "body_mask")
                  for k in (1, 2) for p in ("weight", "bias")])


def test_a_checkpoint_with_the_official_names_loads_strictly(tmp_path):
    source, target = tiny(1), tiny(2)
    own = source.state_dict()
    official = {name: value.clone() for name, value in own.items() if not name.startswith(BRANCH)}
    for name in OFFICIAL_HEAD:  # the one renamed group: the shared stack lives in posekit's ``body``
        own_name = "roi_heads.densepose_head." + name.replace("body_conv_fcn", "body.body_conv_fcn")
        official["roi_heads.densepose_head." + name] = own[own_name].clone()
    for name in OFFICIAL_V2:
        official["roi_heads.densepose_predictor." + name] = own["roi_heads.densepose_predictor." + name].clone()
    official["roi_heads.keypoint_head.conv_fcn1.weight"] = torch.zeros(3)  # the release's never-trained head
    assert len(official) == len(own) + 1
    path = tmp_path / "amanet.pth"
    torch.save({"model": official}, path)
    load_weights(target, str(path), strict=True)
    for name, value in own.items():
        assert torch.equal(target.state_dict()[name], value), name


def test_amav2_predictions_come_in_densepose_rcnns_format_with_amanets_foreground():
    model = tiny(0, "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0")
    generator = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (3, 128, 160), dtype=torch.uint8, generator=generator)
    boxes = torch.tensor([[10.0, 20.0, 90.0, 120.0], [40.5, 8.25, 72.0, 60.0]])
    with torch.no_grad():
        images, sizes = model.preprocess([{"image": image}])
        detections = [Instances(sizes[0], pred_boxes=boxes, scores=torch.tensor([0.9, 0.8]),
                                pred_classes=torch.zeros(2, dtype=torch.long))]
        model.roi_heads.forward_branches(model.backbone(images), detections)
    found = detections[0]
    assert found.pred_densepose_fine_segm.shape == (2, 25, 16, 16) and found.pred_keypoints.shape == (2, 17, 3)
    people = DensePoseEstimator.results(found)
    assert [sorted(person) for person in people] == [["bbox", "keypoints", "labels", "score", "uv"]] * 2
    for person, box, body_mask, fine in zip(people, boxes, found.pred_densepose_body_mask,
                                            found.pred_densepose_fine_segm):
        width, height = int(box[2] - box[0]), int(box[3] - box[1])  # detectron2 truncates the box sides
        assert person["labels"].dtype == np.uint8 and person["labels"].shape == (height, width)
        assert person["uv"].dtype == np.float32 and person["uv"].shape == (2, height, width)
        resize = lambda x: F.interpolate(x[None], (height, width), mode="bilinear", align_corners=False)[0]  # noqa
        probability = torch.softmax(resize(body_mask), dim=0)[1]
        charts = resize(fine).argmax(dim=0)
        expected = (charts * (probability > 0.3)).numpy()
        away = (probability - 0.3).abs().numpy() > 1e-5  # away from float ties
        assert np.array_equal(person["labels"][away], expected[away])
