"""The DensePose family's tree: detectron2 DensePose's keys and defaults, and its yaml files unmodified."""
import textwrap

import pytest

from posekit.config import architecture_name, family_of, get_cfg, load_cfg
from posekit.utils.errors import ConfigError

# detectron2 projects/DensePose/configs/Base-DensePose-RCNN-FPN.yaml and files built on it: their published
# values (their comments left out).
BASE_DENSEPOSE_RCNN_FPN = """
VERSION: 2
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
  TRAIN: ("densepose_coco_2014_train", "densepose_coco_2014_valminusminival")
  TEST: ("densepose_coco_2014_minival",)
SOLVER:
  IMS_PER_BATCH: 16
  BASE_LR: 0.01
  STEPS: (60000, 80000)
  MAX_ITER: 90000
  WARMUP_FACTOR: 0.1
INPUT:
  MIN_SIZE_TRAIN: (640, 672, 704, 736, 768, 800)
"""
R_50_FPN_S1X = """
_BASE_: "Base-DensePose-RCNN-FPN.yaml"
MODEL:
  WEIGHTS: "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
  RESNETS:
    DEPTH: 50
SOLVER:
  MAX_ITER: 130000
  STEPS: (100000, 120000)
"""
R_50_FPN_S1X_LEGACY = """
_BASE_: "Base-DensePose-RCNN-FPN.yaml"
MODEL:
  WEIGHTS: "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
  RESNETS:
    DEPTH: 50
  ROI_DENSEPOSE_HEAD:
    NUM_COARSE_SEGM_CHANNELS: 15
    POOLER_RESOLUTION: 14
    HEATMAP_SIZE: 56
    INDEX_WEIGHTS: 2.0
    PART_WEIGHTS: 0.3
    POINT_REGRESSION_WEIGHTS: 0.1
    DECODER_ON: False
SOLVER:
  BASE_LR: 0.002
  MAX_ITER: 130000
  STEPS: (100000, 120000)
"""
R_50_FPN_DL_S1X = """
_BASE_: "Base-DensePose-RCNN-FPN.yaml"
MODEL:
  WEIGHTS: "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
  RESNETS:
    DEPTH: 50
  ROI_DENSEPOSE_HEAD:
    NAME: "DensePoseDeepLabHead"
SOLVER:
  MAX_ITER: 130000
  STEPS: (100000, 120000)
"""
R_50_FPN_WC1_S1X = """
_BASE_: "Base-DensePose-RCNN-FPN.yaml"
MODEL:
  WEIGHTS: "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
  RESNETS:
    DEPTH: 50
  ROI_DENSEPOSE_HEAD:
    UV_CONFIDENCE:
      ENABLED: True
      TYPE: "iid_iso"
    POINT_REGRESSION_WEIGHTS: 0.0005
SOLVER:
  CLIP_GRADIENTS:
    ENABLED: True
  MAX_ITER: 130000
  STEPS: (100000, 120000)
  WARMUP_FACTOR: 0.025
"""
HRFPN_HRNET_W32_S1X = """
_BASE_: "../Base-DensePose-RCNN-FPN.yaml"
MODEL:
  WEIGHTS: "https://1drv.ms/u/s!Aus8VCZ_C_33dYBMemi9xOUFR0w"
  BACKBONE:
    NAME: "build_hrfpn_backbone"
  RPN:
    IN_FEATURES: ['p1', 'p2', 'p3', 'p4', 'p5']
  ROI_HEADS:
    IN_FEATURES: ['p1', 'p2', 'p3', 'p4', 'p5']
SOLVER:
  MAX_ITER: 130000
  STEPS: (100000, 120000)
  CLIP_GRADIENTS:
    ENABLED: True
    CLIP_TYPE: "norm"
  BASE_LR: 0.03
"""
FILES = {"densepose_rcnn_R_50_FPN_s1x.yaml": R_50_FPN_S1X,
         "densepose_rcnn_R_50_FPN_s1x_legacy.yaml": R_50_FPN_S1X_LEGACY,
         "densepose_rcnn_R_50_FPN_DL_s1x.yaml": R_50_FPN_DL_S1X,
         "densepose_rcnn_R_50_FPN_WC1_s1x.yaml": R_50_FPN_WC1_S1X,
         "HRNet/densepose_rcnn_HRFPN_HRNet_w32_s1x.yaml": HRFPN_HRNET_W32_S1X}


@pytest.fixture
def configs(tmp_path):
    """The published files laid out as in detectron2's configs folder: name -> path."""
    (tmp_path / "Base-DensePose-RCNN-FPN.yaml").write_text(BASE_DENSEPOSE_RCNN_FPN)
    (tmp_path / "HRNet").mkdir()
    for name, text in FILES.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    return {name: str(tmp_path / name) for name in FILES}


def test_the_r50_s1x_chain_loads_into_the_densepose_family(configs):
    cfg = load_cfg(configs["densepose_rcnn_R_50_FPN_s1x.yaml"], ["MODEL.DEVICE", "cpu"])
    assert family_of(cfg).name == "densepose" and architecture_name(cfg) == "GeneralizedRCNN"
    head = cfg.MODEL.ROI_DENSEPOSE_HEAD
    assert cfg.MODEL.DENSEPOSE_ON is True and cfg.MODEL.ROI_HEADS.NAME == "DensePoseROIHeads"
    assert head.NAME == "DensePoseV1ConvXHead" and head.POOLER_TYPE == "ROIAlign"
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == 1 and cfg.MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO == 2
    # detectron2's defaults where the files say nothing (densepose.md 2.1-2.3).
    assert (head.NUM_STACKED_CONVS, head.CONV_HEAD_DIM, head.CONV_HEAD_KERNEL) == (8, 512, 3)
    assert (head.DECONV_KERNEL, head.UP_SCALE, head.POOLER_RESOLUTION, head.HEATMAP_SIZE) == (4, 2, 28, 112)
    assert (head.NUM_PATCHES, head.NUM_COARSE_SEGM_CHANNELS, head.POOLER_SAMPLING_RATIO) == (24, 2, 2)
    assert head.DECODER_ON is True and head.DECODER_COMMON_STRIDE == 4 and head.DECODER_CONV_DIMS == 256
    assert (head.INDEX_WEIGHTS, head.PART_WEIGHTS, head.POINT_REGRESSION_WEIGHTS) == (5.0, 1.0, 0.01)
    assert head.FG_IOU_THRESHOLD == 0.7 and head.COARSE_SEGM_TRAINED_BY_MASKS is False
    assert head.PREDICTOR_NAME == "DensePoseChartWithConfidencePredictor"
    assert head.LOSS_NAME == "DensePoseChartWithConfidenceLoss"
    assert head.DEEPLAB.NORM == "GN" and head.DEEPLAB.NONLOCAL_ON == 0
    # The s1x schedule of densepose.md 1.4 over the base file's solver.
    assert cfg.SOLVER.MAX_ITER == 130000 and cfg.SOLVER.STEPS == (100000, 120000)
    assert cfg.SOLVER.BASE_LR == 0.01 and cfg.SOLVER.WARMUP_FACTOR == 0.1 and cfg.SOLVER.IMS_PER_BATCH == 16
    assert cfg.DATASETS.TRAIN == ("densepose_coco_2014_train", "densepose_coco_2014_valminusminival")
    assert cfg.MODEL.WEIGHTS == "detectron2://ImageNetPretrained/MSRA/R-50.pkl" and cfg.DEVICE == "cpu"


def test_the_legacy_deeplab_confidence_and_hrfpn_files_load(configs):
    legacy = load_cfg(configs["densepose_rcnn_R_50_FPN_s1x_legacy.yaml"]).MODEL.ROI_DENSEPOSE_HEAD
    assert (legacy.NUM_COARSE_SEGM_CHANNELS, legacy.POOLER_RESOLUTION, legacy.HEATMAP_SIZE) == (15, 14, 56)
    assert (legacy.INDEX_WEIGHTS, legacy.PART_WEIGHTS, legacy.POINT_REGRESSION_WEIGHTS) == (2.0, 0.3, 0.1)
    assert legacy.DECODER_ON is False
    assert load_cfg(configs["densepose_rcnn_R_50_FPN_DL_s1x.yaml"]).MODEL.ROI_DENSEPOSE_HEAD.NAME == \
        "DensePoseDeepLabHead"
    confidence = load_cfg(configs["densepose_rcnn_R_50_FPN_WC1_s1x.yaml"])
    assert confidence.MODEL.ROI_DENSEPOSE_HEAD.UV_CONFIDENCE.ENABLED is True
    assert confidence.MODEL.ROI_DENSEPOSE_HEAD.POINT_REGRESSION_WEIGHTS == 0.0005
    assert confidence.SOLVER.WARMUP_FACTOR == 0.025
    hrfpn = load_cfg(configs["HRNet/densepose_rcnn_HRFPN_HRNet_w32_s1x.yaml"])
    assert family_of(hrfpn).name == "densepose" and hrfpn.MODEL.BACKBONE.NAME == "build_hrfpn_backbone"
    assert hrfpn.MODEL.ROI_HEADS.IN_FEATURES == ["p1", "p2", "p3", "p4", "p5"]
    assert hrfpn.SOLVER.CLIP_GRADIENTS.ENABLED is True and hrfpn.SOLVER.CLIP_GRADIENTS.CLIP_TYPE == "norm"
    assert hrfpn.SOLVER.BASE_LR == 0.03 and hrfpn.MODEL.HRNET.STAGE4.NUM_CHANNELS == [32, 64, 128, 256]


def test_only_files_with_densepose_keys_are_claimed(tmp_path):
    plain = tmp_path / "faster.yaml"
    plain.write_text("MODEL:\n  META_ARCHITECTURE: GeneralizedRCNN\n")
    assert family_of(load_cfg(str(plain))).name == "detector"
    switched = tmp_path / "switched.yaml"
    switched.write_text("MODEL:\n  META_ARCHITECTURE: GeneralizedRCNN\n  DENSEPOSE_ON: False\n")
    assert family_of(load_cfg(str(switched))).name == "densepose"


def test_the_other_densepose_sections_exist_with_detectron2_defaults():
    cfg = get_cfg("densepose")
    assert cfg.INPUT.ROTATION_ANGLES == [0] and cfg.TEST.AUG.ROTATION_ANGLES == ()
    assert cfg.DENSEPOSE_EVALUATION.TYPE == "iou" and cfg.DENSEPOSE_EVALUATION.MIN_IOU_THRESHOLD == 0.5
    assert cfg.MODEL.ROI_DENSEPOSE_HEAD.CSE.EMBED_SIZE == 16 and cfg.BOOTSTRAP_DATASETS == []
    assert cfg.MODEL.ROI_DENSEPOSE_HEAD.UV_CONFIDENCE.TYPE == "iid_iso"
    # The detector's keys are all there too.
    assert cfg.MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS == (10.0, 10.0, 5.0, 5.0)


def test_open_sections_take_new_keys_and_a_misspelt_key_is_named(tmp_path):
    path = tmp_path / "maps.yaml"
    path.write_text("MODEL:\n  DENSEPOSE_ON: True\nDATASETS:\n  CATEGORY_MAPS:\n    my_set:\n      '1': 1\n")
    assert load_cfg(str(path)).DATASETS.CATEGORY_MAPS.my_set == {"1": 1}
    path.write_text("MODEL:\n  ROI_DENSEPOSE_HEAD:\n    POOLER_RESOLUTON: 14\n")
    with pytest.raises(ConfigError, match="MODEL.ROI_DENSEPOSE_HEAD.POOLER_RESOLUTON"):
        load_cfg(str(path))
