"""AMANet's config section (densepose.md 4.8): AMANet's ``add_densepose_config`` keys and defaults on top of KTN's
tree (``add_ktn_config``: the keypoint branch and relation keys are shared), so that the official AMANet files (AMANet-pytorch ``projects/AMA/configs`` and the AMA v1
files of the KTN repository) load unmodified.

AMANet's defaults differ from detectron2 DensePose's (HEATMAP_SIZE 56, POOLER_RESOLUTION 14, INDEX_WEIGHTS 2.0,
PART_WEIGHTS 0.3, POINT_REGRESSION_WEIGHTS 0.1); files of this family get AMANet's. The family claims files whose
DensePose head is ``DensePoseAMAHead`` or whose predictor is an AMA one, above DensePose R-CNN and KTN.
"""
from typing import Mapping

from yacs.config import CfgNode as CN

from .family import ConfigFamily, register_config_family
from .ktn import KTN_CONFIG, add_ktn_config

AMA_HEAD = "DensePoseAMAHead"
AMA_ROI_HEADS = "DensePoseAMAROIHeads"
AMA_V1_PREDICTOR = "_DensePoseAMAPredictor"


def _add_ama_head_keys(head: CN) -> None:
    head.DECODER_ON = False  # AMANet's tree has no Panoptic-FPN decoder before its pooler
    head.HEATMAP_SIZE = 56  # the head's output side; the P2 path is pooled at HEATMAP_SIZE / 2 (AMA v1 28, v2 32)
    head.POOLER_RESOLUTION = 14
    head.INDEX_WEIGHTS = 2.0  # S (15 coarse parts)
    head.PART_WEIGHTS = 0.3  # I
    head.POINT_REGRESSION_WEIGHTS = 0.1  # U, V
    head.BODY_MASK_WEIGHTS = 2.0  # M
    head.INTER_WEIGHTS = 0.1  # the intermediate (shallow / deep path) terms
    head.PREDICTOR = "DensePosePredictor"  # with the AMA head, this default means the AMA v1 predictor
    head.SEMSEG_ON = False
    head.SEMSEG_WEIGHTS = 1.0
    head.IA_LOSS = False
    # Foreground = softmax(M)[1] above this (AMANet's result conversion hard-codes 0.3).
    head.FG_MASK_THRESHOLD = 0.3


def _add_semantic_segmentation(cfg: CN) -> None:
    """detectron2's SEM_SEG_HEAD (the SemSegAMA branch reads IN_FEATURES, CONVS_DIM, COMMON_STRIDE)."""
    sem_seg = cfg.MODEL.SEM_SEG_HEAD = CN()
    sem_seg.NAME = "SemSegFPNHead"
    sem_seg.IN_FEATURES = ["p2", "p3", "p4", "p5"]
    sem_seg.IGNORE_VALUE = 255
    sem_seg.NUM_CLASSES = 54
    sem_seg.CONVS_DIM = 128
    sem_seg.COMMON_STRIDE = 4
    sem_seg.NORM = "GN"
    sem_seg.LOSS_WEIGHT = 1.0
    # posekit: the folder of rendered person masks, <image file stem>.png, 0 / 255 (tools/render_semseg_masks.py);
    # the release reads pre-rendered PNGs from ./datasets/coco2014/dp_seg_images/<split>/, which are not distributed.
    cfg.DENSEPOSE_DATA.SEMSEG_MASK_DIR = "datasets/coco2014/dp_seg_images"


def add_amanet_config(cfg: CN) -> None:
    """The DensePose R-CNN tree with AMANet's keys and defaults (module docstring), in place."""
    add_ktn_config(cfg)
    _add_ama_head_keys(cfg.MODEL.ROI_DENSEPOSE_HEAD)
    # AMANet's detectron2 fork switches the standard mask head with this (posekit builds none).
    cfg.MODEL.ROI_MASK_HEAD.RCNN_HEAD_ON = True
    _add_semantic_segmentation(cfg)


def _claims(mapping: Mapping) -> bool:
    head = (mapping.get("MODEL") or {}).get("ROI_DENSEPOSE_HEAD")
    if not isinstance(head, Mapping):
        return False
    return head.get("NAME") == AMA_HEAD or "AMA" in str(head.get("PREDICTOR", ""))


def _finalize(cfg: CN, mapping: Mapping) -> None:
    """KTN's finalisation (PREDICTOR -> PREDICTOR_NAME); AMANet's ROI heads in place of DensePose R-CNN's (the
    release names its own class DensePoseROIHeads); the AMA head's default predictor is AMA v1 (the release's
    default, DensePosePredictor, cannot take the head's outputs)."""
    KTN_CONFIG.finalize(cfg, mapping)
    if cfg.MODEL.ROI_HEADS.NAME in ("DensePoseROIHeads", "DensePoseKTNHeads"):
        cfg.MODEL.ROI_HEADS.NAME = AMA_ROI_HEADS
    head = cfg.MODEL.ROI_DENSEPOSE_HEAD
    if head.NAME == AMA_HEAD and head.PREDICTOR in ("", "DensePosePredictor"):
        head.PREDICTOR_NAME = AMA_V1_PREDICTOR


AMANET_CONFIG = register_config_family(ConfigFamily(
    name="amanet", add_config=add_amanet_config, claims=_claims,
    architecture_key=KTN_CONFIG.architecture_key, run_folders=KTN_CONFIG.run_folders,
    finalize=_finalize, priority=4))
