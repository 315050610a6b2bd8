"""The detector family's tree: detectron2's keys and defaults, and detectron2's own yaml files unmodified."""
import textwrap

import pytest

from posekit.config import family_of, get_cfg, load_cfg
from posekit.utils.errors import ConfigError

# detectron2's configs/Base-RCNN-FPN.yaml and COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml: their published
# values (their comments left out).
BASE_RCNN_FPN = """
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
  ROI_HEADS:
    NAME: "StandardROIHeads"
    IN_FEATURES: ["p2", "p3", "p4", "p5"]
  ROI_BOX_HEAD:
    NAME: "FastRCNNConvFCHead"
    NUM_FC: 2
    POOLER_RESOLUTION: 7
  ROI_MASK_HEAD:
    NAME: "MaskRCNNConvUpsampleHead"
    NUM_CONV: 4
    POOLER_RESOLUTION: 14
DATASETS:
  TRAIN: ("coco_2017_train",)
  TEST: ("coco_2017_val",)
SOLVER:
  IMS_PER_BATCH: 16
  BASE_LR: 0.02
  STEPS: (60000, 80000)
  MAX_ITER: 90000
INPUT:
  MIN_SIZE_TRAIN: (640, 672, 704, 736, 768, 800)
VERSION: 2
"""
FASTER_RCNN_R_50_FPN_1X = """
_BASE_: "../Base-RCNN-FPN.yaml"
MODEL:
  WEIGHTS: "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
  MASK_ON: False
  RESNETS:
    DEPTH: 50
"""


@pytest.fixture
def faster_rcnn(tmp_path):
    (tmp_path / "Base-RCNN-FPN.yaml").write_text(BASE_RCNN_FPN)
    (tmp_path / "COCO-Detection").mkdir()
    child = tmp_path / "COCO-Detection" / "faster_rcnn_R_50_FPN_1x.yaml"
    child.write_text(textwrap.dedent(FASTER_RCNN_R_50_FPN_1X))
    return str(child)


def test_detectron2_files_load_unmodified_with_their_base(faster_rcnn):
    cfg = load_cfg(faster_rcnn, ["MODEL.DEVICE", "cpu", "DATALOADER.NUM_WORKERS", "0"])
    assert family_of(cfg).name == "detector"
    assert cfg.MODEL.BACKBONE.NAME == "build_resnet_fpn_backbone" and cfg.MODEL.RESNETS.DEPTH == 50
    assert cfg.MODEL.ANCHOR_GENERATOR.SIZES == [[32], [64], [128], [256], [512]]
    assert cfg.SOLVER.STEPS == (60000, 80000) and cfg.INPUT.MIN_SIZE_TRAIN == (640, 672, 704, 736, 768, 800)
    assert cfg.MODEL.WEIGHTS == "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
    # detectron2's names win over the base tree's own keys.
    assert cfg.DEVICE == "cpu" and cfg.WORKERS == 0


# detectron2/config/defaults.py values, typed out independently.
DETECTRON2_DEFAULTS = {
    "MODEL.RPN.IOU_THRESHOLDS": [0.3, 0.7], "MODEL.RPN.BATCH_SIZE_PER_IMAGE": 256, "MODEL.RPN.NMS_THRESH": 0.7,
    "MODEL.RPN.PRE_NMS_TOPK_TEST": 6000, "MODEL.RPN.POST_NMS_TOPK_TRAIN": 2000,
    "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE": 512, "MODEL.ROI_HEADS.POSITIVE_FRACTION": 0.25,
    "MODEL.ROI_HEADS.SCORE_THRESH_TEST": 0.05, "MODEL.ROI_HEADS.NMS_THRESH_TEST": 0.5,
    "MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS": (10.0, 10.0, 5.0, 5.0), "MODEL.ROI_BOX_HEAD.POOLER_TYPE": "ROIAlignV2",
    "MODEL.RESNETS.NORM": "FrozenBN", "MODEL.RESNETS.STRIDE_IN_1X1": True, "MODEL.BACKBONE.FREEZE_AT": 2,
    "MODEL.PIXEL_MEAN": [103.530, 116.280, 123.675], "SOLVER.WARMUP_ITERS": 1000, "SOLVER.WARMUP_FACTOR": 0.001,
    "SOLVER.WEIGHT_DECAY_NORM": 0.0, "SOLVER.CHECKPOINT_PERIOD": 5000, "TEST.DETECTIONS_PER_IMAGE": 100,
    "INPUT.MAX_SIZE_TEST": 1333, "INPUT.FORMAT": "BGR", "SOLVER.CLIP_GRADIENTS.CLIP_TYPE": "value",
}


@pytest.mark.parametrize("key", sorted(DETECTRON2_DEFAULTS))
def test_detectron2_defaults(key):
    node = get_cfg("detector")
    for part in key.split("."):
        node = node[part]
    assert node == DETECTRON2_DEFAULTS[key]


def test_a_misspelt_detectron2_key_names_the_closest(faster_rcnn):
    with pytest.raises(ConfigError, match="MODEL.RPN.NMS_THRES.*MODEL.RPN.NMS_THRESH"):
        load_cfg(faster_rcnn, ["MODEL.RPN.NMS_THRES", "0.5"])
