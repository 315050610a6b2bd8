"""KTN / KTNv2's config section: the keys the official KTN (stoa-xh91/KTN) and KTNv2 (stoa-xh91/HumanDensePose)
yaml files set, with their names and defaults, on top of ``add_densepose_config`` (densepose.md 3.10).

With these keys the official files load unmodified; what posekit does differently with a key is listed in
docs/differences.md ("KTN / KTNv2"). The family claims files that set a KTN-only key or name a KTN ROI-heads /
head / predictor class, and otherwise behaves as the DensePose family. Its ``finalize`` also

* copies ``ROI_DENSEPOSE_HEAD.PREDICTOR`` (KTN's name of the predictor key) into ``PREDICTOR_NAME`` when set;
* reads KTN v1's ``ROI_HEADS.NAME: DensePoseROIHeads`` (KTN's own class, MID and keypoint branch included) as
  ``DensePoseKTNHeads``, the KTNv2 repository's name of that class.

``add_ktn_config`` is reusable by families built on KTN (AMANet).
"""
from typing import Mapping

from yacs.config import CfgNode as CN

from .densepose import DENSEPOSE_CONFIG, add_densepose_config
from .family import ConfigFamily, register_config_family

KTN_ROI_HEADS = ("DensePoseKTNHeads", "DensePoseKTNv2Heads")
KTN_HEADS = ("DensePoseKTNHead",)
KTN_PREDICTORS = ("DensePoseKptRelationPredictor", "KTNv2Predictor", "DensePoseKTNv2PredictorV3")
# Keys of ROI_DENSEPOSE_HEAD that only KTN's trees have (a file setting one is a KTN file).
KTN_HEAD_KEYS = ("PREDICTOR", "FG_MASK_THRESHOLD", "KPT_ON", "KPT_UP_SCALE", "KPT_CLASSIFIER_WEIGHT_DIR",
                 "KPT_SURF_RELATION_DIR", "PART_SURF_RELATION_DIR", "BBOX_SURF_RELATION_DIR", "BODY_MASK_WEIGHTS",
                 "MID_ON", "DECODER_OUT_DIMS", "DECODER_MULTI_SCALE_ON", "RCNN_HEAD_ON")


def add_ktn_config(cfg: CN) -> None:
    """Add the DensePose keys and KTN / KTNv2's (official names and defaults) to ``cfg``, in place."""
    add_densepose_config(cfg)
    head = cfg.MODEL.ROI_DENSEPOSE_HEAD
    # KTN's name of the predictor key; "" (posekit): PREDICTOR_NAME decides (KTN's default, "DensePosePredictor",
    # is the chart predictor PREDICTOR_NAME already defaults to).
    head.PREDICTOR = ""
    # Foreground = softmax(M)[person] > threshold (0.5: the arg-max of M, the same thing).
    head.FG_MASK_THRESHOLD = 0.5
    head.BODY_MASK_WEIGHTS = 5.0  # KTNv2's default (KTN v1's was 2.0; every KTN v1 file sets it)
    # Keypoint branch on the DensePose head: the K map = transposed conv x2, then bilinear x KPT_UP_SCALE.
    head.KPT_ON = False
    head.KPT_UP_SCALE = 1
    # Inputs from disk: KTM v1's keypoint classifier (npz or the official pickle: kpt_weight, kpt_bias) and the
    # relation graphs (keypoint / part / person x 25 charts).
    head.KPT_CLASSIFIER_WEIGHT_DIR = ""
    head.KPT_SURF_RELATION_DIR = ""
    head.PART_SURF_RELATION_DIR = ""
    head.BBOX_SURF_RELATION_DIR = ""
    # KTN v1: MID v1 (the Panoptic-FPN decoder) with DECODER_OUT_DIMS outputs; the DensePose branch only when
    # DENSEPOSE_ON and RCNN_HEAD_ON (off: keypoint pre-training).
    head.MID_ON = False
    head.DECODER_OUT_DIMS = 256
    head.RCNN_HEAD_ON = True
    # KTNv2: MID v2's multi-scale (trident) block.
    head.DECODER_MULTI_SCALE_ON = False
    # KTN v1's switch of detectron2's standard keypoint head; posekit's KTN heads never build it (False only).
    cfg.MODEL.ROI_KEYPOINT_HEAD.RCNN_HEAD_ON = False


def _mentions(node: Mapping, key: str, names) -> bool:
    return isinstance(node, Mapping) and node.get(key) in names


def _claims(mapping: Mapping) -> bool:
    model = mapping.get("MODEL")
    if not isinstance(model, Mapping):
        return False
    head = model.get("ROI_DENSEPOSE_HEAD")
    keypoint = model.get("ROI_KEYPOINT_HEAD")
    return (isinstance(head, Mapping) and any(key in head for key in KTN_HEAD_KEYS)
            or _mentions(head, "NAME", KTN_HEADS) or _mentions(head, "PREDICTOR_NAME", KTN_PREDICTORS)
            or _mentions(model.get("ROI_HEADS"), "NAME", KTN_ROI_HEADS)
            or isinstance(keypoint, Mapping) and "RCNN_HEAD_ON" in keypoint)


def _finalize(cfg: CN, mapping: Mapping) -> None:
    DENSEPOSE_CONFIG.finalize(cfg, mapping)
    head = cfg.MODEL.ROI_DENSEPOSE_HEAD
    if head.PREDICTOR:
        head.PREDICTOR_NAME = head.PREDICTOR
    if cfg.MODEL.ROI_HEADS.NAME == "DensePoseROIHeads":
        cfg.MODEL.ROI_HEADS.NAME = "DensePoseKTNHeads"


KTN_CONFIG = register_config_family(ConfigFamily(
    name="ktn", add_config=add_ktn_config, claims=_claims, architecture_key=DENSEPOSE_CONFIG.architecture_key,
    run_folders=DENSEPOSE_CONFIG.run_folders, finalize=_finalize, priority=3))
