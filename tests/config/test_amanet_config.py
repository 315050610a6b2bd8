"""The AMANet family's tree: the official AMANet files (AMANet-pytorch ``projects/AMA/configs`` and its history,
the KTN repository's AMA v1 files) load unmodified (typed in here with their published values, comments left
out), AMANet's defaults apply, the AMA head's default predictor is AMA v1, and unknown keys still fail."""
import textwrap

import pytest

from test_ktn_config import KTN_BASE  # noqa: I001 (this folder's sibling test module, on pytest's path)

from posekit.config import family_of, get_cfg, load_cfg
from posekit.utils.errors import ConfigError

# AMANet-pytorch's projects/AMA/configs/Base-DensePose-RCNN.yaml (also the KTN repository's AMA v1 files' base) is
# KTN's Base-DensePose-RCNN.yaml value for value, typed in by KTN's test.
BASE = KTN_BASE

# AMANet-pytorch projects/AMA/configs/densepose_AMA_R_50_FPN_s1x.yaml (AMAv2)
AMA_V2 = """
_BASE_: "./Base-DensePose-RCNN.yaml"
INPUT:
  MIN_SIZE_TRAIN: (640, 672, 704, 736, 768, 800)
MODEL:

  MASK_ON: False
  KEYPOINT_ON: True
  DENSEPOSE_ON: True
  ROI_BOX_HEAD:
    SMOOTH_L1_BETA: 0.5
  ROI_DENSEPOSE_HEAD:
    NAME: "DensePoseAMAHead"
    INTER_WEIGHTS: 0.5
    RCNN_HEAD_ON: True
    SEMSEG_WEIGHTS: 1.0
    CONV_HEAD_DIM: 256
    POOLER_RESOLUTION: 32
    HEATMAP_SIZE: 64
    SEMSEG_ON: False
    IA_LOSS: False
    KPT_ON: True
    KPT_UP_SCALE: 1
    FG_IOU_THRESHOLD: 0.65
    PREDICTOR: "TaskTransformerAMAPredictorV2"

  ROI_KEYPOINT_HEAD:
    LOSS_WEIGHT: 0.5
  RPN:
    PRE_NMS_TOPK_TRAIN: 1200
    PRE_NMS_TOPK_TEST: 1000
    POST_NMS_TOPK_TRAIN: 1000
    POST_NMS_TOPK_TEST: 1000
  ROI_HEADS:
      BATCH_SIZE_PER_IMAGE: 384
SOLVER:
  MAX_ITER: 260000
  STEPS: (200000, 240000)
  BASE_LR: 0.002
  IMS_PER_BATCH: 4
  WARMUP_FACTOR: 0.01
"""

# AMANet-pytorch projects/AMA/configs/quick_schedules/densepose_AMA_R_50_FPN_s1x.yaml
AMA_QUICK = """
_BASE_: "Base-DensePose-RCNN.yaml"
INPUT:
  MIN_SIZE_TRAIN: (640, 672, 704, 736, 768, 800)
MODEL:
  WEIGHTS: "catalog://ImageNetPretrained/MSRA/R-50"

  ROI_DENSEPOSE_HEAD:
    NAME: "DensePoseAMAHead"
    INDEX_WEIGHTS: 0.1
SOLVER:
  MAX_ITER: 260000
  STEPS: (200000, 240000)
  BASE_LR: 0.002
  IMS_PER_BATCH: 8
  WARMUP_FACTOR: 0.1
"""

# AMANet-pytorch history (8105c83) coco_ama_dp_configs/densepose_SemSegAMA_IA_3xDeConv_relation_parts_R_50_FPN_s1x
RELATION_PARTS = """
_BASE_: "Base-DensePose-RCNN.yaml"
INPUT:
  MIN_SIZE_TRAIN: (640, 672, 704, 736, 768, 800)
MODEL:
  WEIGHTS: "/home/wangxuanhan/research/project/detectron2-master/coco_dp_exps/ResNet50_AMAATT_SMFPN_IA_3xDeconv_Kpt_Net_1lx/model_final.pth"
  MASK_ON: False
  KEYPOINT_ON: True
  DENSEPOSE_ON: True
  ROI_BOX_HEAD:
    SMOOTH_L1_BETA: 0.5
  ROI_DENSEPOSE_HEAD:
    NAME: "DensePoseAMAHead"
    INTER_WEIGHTS: 0.1
    RCNN_HEAD_ON: True
    SEMSEG_WEIGHTS: 1.0
    CONV_HEAD_DIM: 256
    SEMSEG_ON: False
    IA_LOSS: False
    KPT_ON: True
    KPT_UP_SCALE: 1
    FG_IOU_THRESHOLD: 0.65
    KPT_CLASSIFIER_WEIGHT_DIR: "/home/wangxuanhan/research/project/detectron2-master/coco_dp_exps/ResNet50_AMAATT_SMFPN_IA_3xDeconv_Kpt_Net_1lx/kpt_classifier.pkl"

  ROI_MASK_HEAD:
    RCNN_HEAD_ON: False
  ROI_KEYPOINT_HEAD:
    RCNN_HEAD_ON: False
    LOSS_WEIGHT: 0.5
  RPN:
    PRE_NMS_TOPK_TRAIN: 1200
    PRE_NMS_TOPK_TEST: 1000
    POST_NMS_TOPK_TRAIN: 1000
    POST_NMS_TOPK_TEST: 1000
  ROI_HEADS:
      BATCH_SIZE_PER_IMAGE: 384
SOLVER:
  MAX_ITER: 260000
  STEPS: (200000, 240000)
  BASE_LR: 0.002
  IMS_PER_BATCH: 8
  WARMUP_FACTOR: 0.01
"""

# KTN repository projects/DensePose/configs/densepose_SemSegAMA_IA_3xDeConv_kpt_R_50_FPN_s3x.yaml (AMA v1)
SEMSEG_IA_KPT_S3X = """
_BASE_: "Base-DensePose-RCNN.yaml"
INPUT:
  MIN_SIZE_TRAIN: (640, 672, 704, 736, 768, 800)
MODEL:
  WEIGHTS: "/home/wangxuanhan/research/project/detectron2-master/coco_exps/DensePose_kpt_ResNet50_baseline/model_final.pth"
  MASK_ON: True
  KEYPOINT_ON: True
  ROI_BOX_HEAD:
    SMOOTH_L1_BETA: 0.5
  ROI_DENSEPOSE_HEAD:
    NAME: "DensePoseAMAHead"
    INTER_WEIGHTS: 0.1
    SEMSEG_WEIGHTS: 1.0
    CONV_HEAD_DIM: 256
    SEMSEG_ON: True
    IA_LOSS: True
    KPT_ON: True
    KPT_UP_SCALE: 4
    FG_IOU_THRESHOLD: 0.65

  ROI_MASK_HEAD:
    RCNN_HEAD_ON: False
  ROI_KEYPOINT_HEAD:
    RCNN_HEAD_ON: False
    LOSS_WEIGHT: 1.0
  RPN:
    PRE_NMS_TOPK_TRAIN: 1200
    PRE_NMS_TOPK_TEST: 1000
    POST_NMS_TOPK_TRAIN: 1000
    POST_NMS_TOPK_TEST: 1000
  ROI_HEADS:
      BATCH_SIZE_PER_IMAGE: 384
SOLVER:
  MAX_ITER: 390000
  STEPS: (300000, 360000)
  BASE_LR: 0.002
  IMS_PER_BATCH: 16
  WARMUP_FACTOR: 0.01
"""

# KTN repository projects/DensePose/configs/densepose_SemSegAMA_IA_3xDeConv_kpt_R_50_FPN_s1x.yaml
SEMSEG_IA_KPT_S1X = """
_BASE_: "Base-DensePose-RCNN.yaml"
INPUT:
  MIN_SIZE_TRAIN: (640, 672, 704, 736, 768, 800)
MODEL:
  WEIGHTS: "catalog://ImageNetPretrained/MSRA/R-50"
  MASK_ON: True
  KEYPOINT_ON: True

  ROI_DENSEPOSE_HEAD:
    NAME: "DensePoseAMAHead"
    INTER_WEIGHTS: 0.1
    SEMSEG_WEIGHTS: 1.0
    CONV_HEAD_DIM: 256
    SEMSEG_ON: True
    IA_LOSS: True
    KPT_ON: True
  ROI_MASK_HEAD:
    RCNN_HEAD_ON: False
  ROI_KEYPOINT_HEAD:
    RCNN_HEAD_ON: False
    LOSS_WEIGHT: 0.1
  SEM_SEG_HEAD:
    CONVS_DIM: 256
  RPN:
    PRE_NMS_TOPK_TRAIN: 1500
    PRE_NMS_TOPK_TEST: 1000
    POST_NMS_TOPK_TRAIN: 1000
    POST_NMS_TOPK_TEST: 1000
  ROI_HEADS:
      BATCH_SIZE_PER_IMAGE: 512
SOLVER:
  MAX_ITER: 260000
  STEPS: (200000, 240000)
  BASE_LR: 0.002
  IMS_PER_BATCH: 8
  WARMUP_FACTOR: 0.1
"""


def write(folder, name, text):
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.fixture
def official(tmp_path):
    write(tmp_path, "Base-DensePose-RCNN.yaml", BASE)
    return lambda name, text: load_cfg(write(tmp_path, name, text))


def test_amav2_file_loads_with_its_values(official):
    cfg = official("densepose_AMA_R_50_FPN_s1x.yaml", AMA_V2)
    head = cfg.MODEL.ROI_DENSEPOSE_HEAD
    assert family_of(cfg).name == "amanet" and cfg.MODEL.ROI_HEADS.NAME == "DensePoseAMAROIHeads"
    assert head.PREDICTOR_NAME == "TaskTransformerAMAPredictorV2" and head.HEATMAP_SIZE == 64
    assert (head.INTER_WEIGHTS, head.FG_IOU_THRESHOLD, cfg.MODEL.ROI_KEYPOINT_HEAD.LOSS_WEIGHT) == (0.5, 0.65, 0.5)
    # AMANet's defaults for what the file leaves: S 2.0, I 0.3, U/V 0.1, M 2.0, foreground at softmax(M) > 0.3.
    assert (head.INDEX_WEIGHTS, head.PART_WEIGHTS, head.POINT_REGRESSION_WEIGHTS, head.BODY_MASK_WEIGHTS,
            head.FG_MASK_THRESHOLD) == (2.0, 0.3, 0.1, 2.0, 0.3)
    assert not head.DECODER_ON and cfg.SOLVER.WARMUP_FACTOR == 0.01 and cfg.MODEL.WEIGHTS == ""


def test_ama_head_without_a_predictor_gets_ama_v1(official):
    """The release's default (DensePosePredictor) cannot take the AMA head's outputs (densepose.md 4.3)."""
    cfg = official("densepose_AMA_R_50_FPN_s1x.yaml", AMA_QUICK)
    head = cfg.MODEL.ROI_DENSEPOSE_HEAD
    assert family_of(cfg).name == "amanet" and head.PREDICTOR_NAME == "_DensePoseAMAPredictor"
    assert (head.INDEX_WEIGHTS, head.HEATMAP_SIZE) == (0.1, 56)
    assert cfg.MODEL.WEIGHTS == "catalog://ImageNetPretrained/MSRA/R-50"


@pytest.mark.parametrize("name, text, semseg, ia, kpt_scale", [
    ("densepose_SemSegAMA_IA_3xDeConv_kpt_R_50_FPN_s3x.yaml", SEMSEG_IA_KPT_S3X, True, True, 4),
    ("densepose_SemSegAMA_IA_3xDeConv_kpt_R_50_FPN_s1x.yaml", SEMSEG_IA_KPT_S1X, True, True, 1),
    ("densepose_SemSegAMA_IA_3xDeConv_relation_parts_R_50_FPN_s1x.yaml", RELATION_PARTS, False, False, 1)])
def test_ama_v1_files_load(official, name, text, semseg, ia, kpt_scale):
    cfg = official(name, text)
    head = cfg.MODEL.ROI_DENSEPOSE_HEAD
    assert family_of(cfg).name == "amanet"
    assert (head.SEMSEG_ON, head.IA_LOSS, head.KPT_ON, head.KPT_UP_SCALE) == (semseg, ia, True, kpt_scale)
    assert not cfg.MODEL.ROI_MASK_HEAD.RCNN_HEAD_ON and not cfg.MODEL.ROI_KEYPOINT_HEAD.RCNN_HEAD_ON


def test_sem_seg_head_keys_and_defaults(official):
    cfg = official("densepose_SemSegAMA_IA_3xDeConv_kpt_R_50_FPN_s1x.yaml", SEMSEG_IA_KPT_S1X)
    assert cfg.MODEL.SEM_SEG_HEAD.CONVS_DIM == 256 and cfg.MODEL.SEM_SEG_HEAD.COMMON_STRIDE == 4
    assert get_cfg("amanet").MODEL.SEM_SEG_HEAD.CONVS_DIM == 128
    assert cfg.DENSEPOSE_DATA.SEMSEG_MASK_DIR == "datasets/coco2014/dp_seg_images"


def test_ktn_and_densepose_files_stay_theirs(official):
    ktn = official("ktn.yaml", '_BASE_: "Base-DensePose-RCNN.yaml"\nMODEL:\n  ROI_DENSEPOSE_HEAD:\n'
                               '    PREDICTOR: "DensePoseKptRelationPredictor"\n    KPT_ON: True\n')
    assert family_of(ktn).name == "ktn"
    assert family_of(official("plain.yaml", '_BASE_: "Base-DensePose-RCNN.yaml"\n')).name == "densepose"


def test_unknown_key_fails_with_its_name(official):
    with pytest.raises(ConfigError, match="INTER_WEIGHT"):
        official("typo.yaml", AMA_V2.replace("INTER_WEIGHTS: 0.5", "INTER_WEIGHT: 0.5"))


def test_shipped_amav2_file_names_its_start_model_and_the_tree_has_hrnet_keys(repo_root):
    """The release's AMAv2 file sets no MODEL.WEIGHTS and its tree lacks the HRNet section (densepose.md 10.2)."""
    cfg = load_cfg(str(repo_root / "experiments/densepose_coco/densepose_AMA_R_50_FPN_s1x.yaml"))
    assert cfg.MODEL.WEIGHTS == "model/amanet/SemSegAMA_IA_3xDeConv_kpt_R_50_FPN_s1x.pth"
    assert "model/amanet/SemSegAMA_IA_3xDeConv_kpt_R_50_FPN_s1x.pth" in (repo_root / "docs/models/amanet.md").read_text()
    assert get_cfg("amanet").MODEL.HRNET.HRFPN.OUT_CHANNELS == 256
