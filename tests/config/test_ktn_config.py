"""The KTN family's tree: the official KTN (stoa-xh91/KTN) and KTNv2 (stoa-xh91/HumanDensePose) yaml files load
unmodified (typed in here with their published values, comments left out), and unknown keys still fail."""
import textwrap

import pytest

from posekit.config import architecture_name, family_of, load_cfg
from posekit.models.densepose.predictor import DENSEPOSE_PREDICTOR_REGISTRY
from posekit.utils.errors import ConfigError

# KTN projects/KTN/configs/Base-DensePose-RCNN.yaml
KTN_BASE = """
MODEL:
  META_ARCHITECTURE: "GeneralizedRCNN"
  BACKBONE:
    NAME: "build_resnet_fpn_backbone"
  RESNETS:
    OUT_FEATURES: ["res2", "res3", "res4", "res5"]
  FPN:
    IN_FEATURES: ["res2", "res3", "res4", "res5"]
  ANCHOR_GENERATOR:
    SIZES: [[32], [64], [128], [256], [512]]
    ASPECT_RATIOS: [[0.5, 1.0, 2.0]]
  RPN:
    IN_FEATURES: ["p2", "p3", "p4", "p5", "p6"]
    PRE_NMS_TOPK_TRAIN: 2000
    PRE_NMS_TOPK_TEST: 1000
    POST_NMS_TOPK_TRAIN: 1000
    POST_NMS_TOPK_TEST: 1000

  DENSEPOSE_ON: True
  ROI_HEADS:
    NAME: "DensePoseROIHeads"
    IN_FEATURES: ["p2", "p3", "p4", "p5"]
    NUM_CLASSES: 1
  ROI_BOX_HEAD:
    NAME: "FastRCNNConvFCHead"
    NUM_FC: 2
    POOLER_RESOLUTION: 7
    POOLER_SAMPLING_RATIO: 2
    POOLER_TYPE: "ROIAlign"
  ROI_DENSEPOSE_HEAD:
    NAME: "DensePoseV1ConvXHead"
    POOLER_TYPE: "ROIAlign"
DATASETS:
  TRAIN: ("densepose_coco_2014_train", "densepose_coco_2014_valminusminival")
  TEST: ("densepose_coco_2014_minival",)
SOLVER:
  IMS_PER_BATCH: 16
  BASE_LR: 0.02
  STEPS: (60000, 80000)
  MAX_ITER: 90000
"""
# KTN projects/KTN/configs/densepose_R_50_FPN_KTN_net_s1x.yaml
KTN_NET = """
_BASE_: "Base-DensePose-RCNN.yaml"
INPUT:
  MIN_SIZE_TRAIN: (640, 672, 704, 736, 768, 800)
MODEL:
  WEIGHTS: "models/Keypoints_KTN_Weights.pth"
  KEYPOINT_ON: True
  DENSEPOSE_ON: True
  ROI_DENSEPOSE_HEAD:
    CONV_HEAD_DIM: 512
    KPT_ON: True
    PART_WEIGHTS: 1.0
    INDEX_WEIGHTS: 2.0
    POINT_REGRESSION_WEIGHTS: 0.01
    BODY_MASK_WEIGHTS: 5.0
    KPT_CLASSIFIER_WEIGHT_DIR: "models/keypoints_kpt_classifier_weights.pkl"
    KPT_SURF_RELATION_DIR: "models/kpt_surface_relationships.pkl"
    PREDICTOR: "DensePoseKptRelationPredictor"
    POOLER_RESOLUTION: 28
    HEATMAP_SIZE: 112
    UP_SCALE: 2
    KPT_UP_SCALE: 2
    MID_ON: True
    FG_IOU_THRESHOLD: 0.65
    FG_MASK_THRESHOLD: 0.3
  ROI_KEYPOINT_HEAD:
    RCNN_HEAD_ON: False
    LOSS_WEIGHT: 0.5
SOLVER:
  MAX_ITER: 260000
  STEPS: (200000, 240000)
  BASE_LR: 0.01
  IMS_PER_BATCH: 8
  WARMUP_FACTOR: 0.1
"""
# KTN history (commit 9992ac8): keypoint pre-training and the KTM-only ablation.
KTN_KPT = """
_BASE_: "Base-DensePose-RCNN.yaml"
INPUT:
  MIN_SIZE_TRAIN: (640, 672, 704, 736, 768, 800)
MODEL:
  WEIGHTS: "catalog://ImageNetPretrained/MSRA/R-50"
  KEYPOINT_ON: True
  DENSEPOSE_ON: False
  ROI_DENSEPOSE_HEAD:
    CONV_HEAD_DIM: 512
    KPT_ON: True
    KPT_UP_SCALE: 2
    FG_IOU_THRESHOLD: 0.65
    RCNN_HEAD_ON: False
  ROI_KEYPOINT_HEAD:
    RCNN_HEAD_ON: False
  ROI_HEADS:
    NUM_CLASSES: 1
  ROI_BOX_HEAD:
    SMOOTH_L1_BETA: 0.5
  RPN:
    POST_NMS_TOPK_TRAIN: 1500


SOLVER:
  MAX_ITER: 260000
  STEPS: (200000, 240000)
  BASE_LR: 0.002
  IMS_PER_BATCH: 8
  WARMUP_FACTOR: 0.1
DATASETS:
  TRAIN: ("keypoints_coco_2014_train","keypoints_coco_2014_valminusminival")
  TEST: ("keypoints_coco_2014_minival","densepose_coco_2014_minival",)
"""
KTN_KTM_ONLY = """
_BASE_: "Base-DensePose-RCNN.yaml"
INPUT:
  MIN_SIZE_TRAIN: (640, 672, 704, 736, 768, 800)
MODEL:
  WEIGHTS: "/home/wangxuanhan/research/project/detectron2-master/coco_dp_exps/ResNet50_fpn_Kpt_Net_1lx/model_final.pth"
  KEYPOINT_ON: True
  DENSEPOSE_ON: True
  ROI_BOX_HEAD:
    SMOOTH_L1_BETA: 0.5
  ROI_DENSEPOSE_HEAD:
    CONV_HEAD_DIM: 512
    KPT_ON: True
    RCNN_HEAD_ON: True
    UP_SCALE: 2
    KPT_UP_SCALE: 2
    KPT_CLASSIFIER_WEIGHT_DIR: "/home/wangxuanhan/research/project/detectron2-master/coco_dp_exps/ResNet50_fpn_Kpt_Net_1lx/kpt_classifier.pkl"
    PREDICTOR: "DensePoseKptRelationPredictorV2"
    KPT_SURF_RELATION_DIR: "/home/wangxuanhan/research/project/visual_genome_python_driver/kpt_surface_relationships.pkl"
  ROI_KEYPOINT_HEAD:
    RCNN_HEAD_ON: False
    LOSS_WEIGHT: 0.5
SOLVER:
  MAX_ITER: 260000
  STEPS: (200000, 240000)
  BASE_LR: 0.002
  IMS_PER_BATCH: 8
  WARMUP_FACTOR: 0.1
"""
# HumanDensePose projects/KTNv2/configs/Base-DensePose-RCNN-FPN.yaml (ultrapose/ has the same but its data sets).
KTNV2_BASE = """
MODEL:
  META_ARCHITECTURE: "GeneralizedRCNN"
  BACKBONE:
    NAME: "build_resnet_fpn_backbone"
  RESNETS:
    OUT_FEATURES: ["res2", "res3", "res4", "res5"]
  FPN:
    IN_FEATURES: ["res2", "res3", "res4", "res5"]
  ANCHOR_GENERATOR:
    SIZES: [[32], [64], [128], [256], [512]]
    ASPECT_RATIOS: [[0.5, 1.0, 2.0]]
  RPN:
    IN_FEATURES: ["p2", "p3", "p4", "p5", "p6"]
    PRE_NMS_TOPK_TRAIN: 2000
    PRE_NMS_TOPK_TEST: 1000
    POST_NMS_TOPK_TRAIN: 1000
    POST_NMS_TOPK_TEST: 1000

  DENSEPOSE_ON: True
  ROI_HEADS:
    NAME: "DensePoseROIHeads"
    IN_FEATURES: ["p2", "p3", "p4", "p5"]
    NUM_CLASSES: 1
  ROI_BOX_HEAD:
    NAME: "FastRCNNConvFCHead"
    NUM_FC: 2
    POOLER_RESOLUTION: 7
    POOLER_SAMPLING_RATIO: 2
    POOLER_TYPE: "ROIAlign"
  ROI_DENSEPOSE_HEAD:
    NAME: "DensePoseV1ConvXHead"
    POOLER_TYPE: "ROIAlign"
    NUM_COARSE_SEGM_CHANNELS: 2
DATASETS:
  TRAIN: {train}
  TEST: {test}
SOLVER:
  IMS_PER_BATCH: 16
  BASE_LR: 0.01
  STEPS: (60000, 80000)
  MAX_ITER: 90000
  WARMUP_FACTOR: 0.1
INPUT:
  MIN_SIZE_TRAIN: (640, 672, 704, 736, 768, 800)
"""
KTNV2_HEAD = """
    PREDICTOR: "{predictor}"
    KPT_ON: True
    KPT_SURF_RELATION_DIR: "projects/KTNv2/comm_knowledge/kpt_surf_crkg.pkl"
    PART_SURF_RELATION_DIR: "projects/KTNv2/comm_knowledge/part_surf_crkg.pkl"
    BBOX_SURF_RELATION_DIR: "projects/KTNv2/comm_knowledge/person_surf_crkg.pkl"
    POOLER_RESOLUTION: 28
    HEATMAP_SIZE: 112
    UP_SCALE: 2
    KPT_UP_SCALE: 2
    INDEX_WEIGHTS: 2.0
    FG_IOU_THRESHOLD: 0.65
    FG_MASK_THRESHOLD: 0.3
    DECODER_MULTI_SCALE_ON: True
  ROI_KEYPOINT_HEAD:
    LOSS_WEIGHT: 0.1
"""
# densepose_rcnn_R_50_KTNv2.yaml (ultrapose/densepose_rcnn_R_50_KTNv2.yaml: IMS_PER_BATCH 4, BASE_LR 0.0001, its data)
KTNV2_R50 = """
_BASE_: "./Base-DensePose-RCNN-FPN.yaml"
MODEL:
  KEYPOINT_ON: True
  DENSEPOSE_ON: True
  WEIGHTS: "pretrained_weights/KTN_models/R50-MIDv2-kpt.pth"
  ROI_HEADS:
    NAME: "DensePoseKTNv2Heads"
  ROI_DENSEPOSE_HEAD:
    NAME: "DensePoseKTNHead"
""" + KTNV2_HEAD.format(predictor="KTNv2Predictor") + """SOLVER:
  MAX_ITER: 130000
  STEPS: (100000, 120000)
  IMS_PER_BATCH: {batch}
  BASE_LR: {lr}
  CHECKPOINT_PERIOD: 10000

DATASETS:
  TRAIN: {train}

VERSION: 2
"""
# densepose_rcnn_HRFPN_w32_KTNv2.yaml (names the retired DensePoseKTNv2PredictorV3)
KTNV2_HRFPN = """
_BASE_: "./Base-DensePose-RCNN-FPN.yaml"
MODEL:
  KEYPOINT_ON: True
  DENSEPOSE_ON: True
  WEIGHTS: "./pretrained_weights/hrnet-w32-MIDv2-kpt.pth"
  BACKBONE:
    NAME: "build_hrfpn_backbone"
  RPN:
    IN_FEATURES: ['p1', 'p2', 'p3', 'p4', 'p5']
  ROI_HEADS:
    IN_FEATURES: ['p1', 'p2', 'p3', 'p4', 'p5']
    NAME: "DensePoseKTNv2Heads"
  ROI_DENSEPOSE_HEAD:
    NAME: "DensePoseKTNHead"
""" + KTNV2_HEAD.format(predictor="DensePoseKTNv2PredictorV3") + """SOLVER:
  MAX_ITER: 130000
  STEPS: (100000, 120000)
  IMS_PER_BATCH: 16
  BASE_LR: 0.03
  CLIP_GRADIENTS:
    ENABLED: True
    CLIP_TYPE: "norm"
  CHECKPOINT_PERIOD: 10000

DATASETS:
  TRAIN: ("densepose_coco_2014_train", "densepose_coco_2014_valminusminival")

VERSION: 2
"""
COCO = dict(train='("densepose_coco_2014_train", "densepose_coco_2014_valminusminival")',
            test='("densepose_coco_2014_minival",)')
# The ultrapose base names its training set without the tuple's comma (a string); the files built on it override it.
ULTRAPOSE = dict(train='("densepose_ultrapose_train")', test='("densepose_ultrapose_minival",)')


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """The official files written out in their folders."""
    root = tmp_path_factory.mktemp("official")
    files = {"KTN/Base-DensePose-RCNN.yaml": KTN_BASE, "KTN/densepose_R_50_FPN_KTN_net_s1x.yaml": KTN_NET,
             "KTN/densepose_kpt_R_50_FPN_s1x.yaml": KTN_KPT,
             "KTN/densepose_R_50_FPN_Kpt_Weight_Transfer_s1x.yaml": KTN_KTM_ONLY,
             "KTNv2/Base-DensePose-RCNN-FPN.yaml": KTNV2_BASE.format(**COCO),
             "KTNv2/densepose_rcnn_R_50_KTNv2.yaml": KTNV2_R50.format(batch=16, lr=0.01, train=COCO["train"]),
             "KTNv2/densepose_rcnn_HRFPN_w32_KTNv2.yaml": KTNV2_HRFPN,
             "KTNv2/ultrapose/Base-DensePose-RCNN-FPN.yaml": KTNV2_BASE.format(**ULTRAPOSE),
             "KTNv2/ultrapose/densepose_rcnn_R_50_KTNv2.yaml": KTNV2_R50.format(
                 batch=4, lr=0.0001, train='("densepose_ultrapose_train",)')}
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_ktn_v1_file_loads_into_the_ktn_family(official):
    cfg = load_cfg(str(official / "KTN/densepose_R_50_FPN_KTN_net_s1x.yaml"))
    head = cfg.MODEL.ROI_DENSEPOSE_HEAD
    assert family_of(cfg).name == "ktn" and architecture_name(cfg) == "GeneralizedRCNN"
    # KTN's own DensePoseROIHeads (MID and keypoint branch) is the KTNv2 repository's DensePoseKTNHeads.
    assert cfg.MODEL.ROI_HEADS.NAME == "DensePoseKTNHeads"
    assert head.PREDICTOR == head.PREDICTOR_NAME == "DensePoseKptRelationPredictor"
    assert head.MID_ON and head.KPT_ON and head.KPT_UP_SCALE == 2 and head.FG_MASK_THRESHOLD == 0.3
    assert (head.PART_WEIGHTS, head.INDEX_WEIGHTS, head.POINT_REGRESSION_WEIGHTS, head.BODY_MASK_WEIGHTS) == \
        (1.0, 2.0, 0.01, 5.0)
    assert head.KPT_CLASSIFIER_WEIGHT_DIR == "models/keypoints_kpt_classifier_weights.pkl"
    assert cfg.MODEL.ROI_KEYPOINT_HEAD.LOSS_WEIGHT == 0.5 and not cfg.MODEL.ROI_KEYPOINT_HEAD.RCNN_HEAD_ON
    assert cfg.SOLVER.MAX_ITER == 260000 and cfg.SOLVER.IMS_PER_BATCH == 8


def test_ktn_history_files_load(official):
    kpt = load_cfg(str(official / "KTN/densepose_kpt_R_50_FPN_s1x.yaml"))
    assert family_of(kpt).name == "ktn" and not kpt.MODEL.DENSEPOSE_ON and kpt.MODEL.ROI_DENSEPOSE_HEAD.KPT_ON
    assert kpt.MODEL.RPN.POST_NMS_TOPK_TRAIN == 1500 and kpt.MODEL.ROI_BOX_HEAD.SMOOTH_L1_BETA == 0.5
    ktm = load_cfg(str(official / "KTN/densepose_R_50_FPN_Kpt_Weight_Transfer_s1x.yaml"))
    assert ktm.MODEL.ROI_DENSEPOSE_HEAD.PREDICTOR_NAME == "DensePoseKptRelationPredictorV2"
    assert not ktm.MODEL.ROI_DENSEPOSE_HEAD.MID_ON


@pytest.mark.parametrize("name, batch, train", [
    ("KTNv2/densepose_rcnn_R_50_KTNv2.yaml", 16, ("densepose_coco_2014_train", "densepose_coco_2014_valminusminival")),
    ("KTNv2/ultrapose/densepose_rcnn_R_50_KTNv2.yaml", 4, ("densepose_ultrapose_train",))])
def test_ktnv2_files_load(official, name, batch, train):
    cfg = load_cfg(str(official / name))
    head = cfg.MODEL.ROI_DENSEPOSE_HEAD
    assert family_of(cfg).name == "ktn" and cfg.MODEL.ROI_HEADS.NAME == "DensePoseKTNv2Heads"
    assert head.NAME == "DensePoseKTNHead" and head.PREDICTOR_NAME == "KTNv2Predictor"
    assert head.DECODER_ON and head.DECODER_MULTI_SCALE_ON and head.INDEX_WEIGHTS == 2.0
    assert head.BODY_MASK_WEIGHTS == 5.0  # KTNv2's default
    assert head.PART_SURF_RELATION_DIR.endswith("part_surf_crkg.pkl")
    assert cfg.MODEL.ROI_KEYPOINT_HEAD.LOSS_WEIGHT == 0.1
    assert cfg.SOLVER.IMS_PER_BATCH == batch and tuple(cfg.DATASETS.TRAIN) == train


def test_hrfpn_file_loads_and_its_retired_predictor_fails_in_one_line(official):
    cfg = load_cfg(str(official / "KTNv2/densepose_rcnn_HRFPN_w32_KTNv2.yaml"))
    assert cfg.MODEL.BACKBONE.NAME == "build_hrfpn_backbone"
    build = DENSEPOSE_PREDICTOR_REGISTRY.get(cfg.MODEL.ROI_DENSEPOSE_HEAD.PREDICTOR_NAME, "key")
    with pytest.raises(ConfigError, match="DensePoseKTNv2PredictorV3.*use KTNv2Predictor"):
        build(cfg, 512)


def test_unknown_keys_still_fail_naming_the_key(official, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f'_BASE_: "{official}/KTNv2/densepose_rcnn_R_50_KTNv2.yaml"\n'
                   "MODEL:\n  ROI_DENSEPOSE_HEAD:\n    KPT_SURF_RELATION_FILE: x.npz\n")
    with pytest.raises(ConfigError, match="KPT_SURF_RELATION_FILE"):
        load_cfg(str(bad))


def test_plain_densepose_files_stay_in_the_densepose_family(official, tmp_path):
    plain = tmp_path / "plain.yaml"
    plain.write_text(f'_BASE_: "{official}/KTNv2/Base-DensePose-RCNN-FPN.yaml"\n')
    cfg = load_cfg(str(plain))
    assert family_of(cfg).name == "densepose" and cfg.MODEL.ROI_HEADS.NAME == "DensePoseROIHeads"
