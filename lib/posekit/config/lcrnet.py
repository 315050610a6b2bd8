"""LCR-Net's config section: the detector's keys (Detectron v1 values in the files) plus ``MODEL.LCRNET``.

LCR-Net is a C4 detector whose box branch is a (K+1)-way anchor-pose classifier and a per-class 5J pose
regressor (lcrnet.md 3). ``MODEL.LCRNET`` holds what the detector has no key for: the anchor-pose file
(K and J come from it and are checked against NUM_ANCHOR_POSES / NUM_JOINTS), the pose regression and
loss settings (3.6-3.7), the pose proposals integration (PPI, 4) and the 3D evaluation (6.1).
``SOLVER.MAX_TIME`` (posekit) stops training after that many seconds, as DEKR's TRAIN.MAX_TIME;
``INPUT.RESIZE_LIBRARY`` (posekit) resizes images as Detectron did (OpenCV) unless set to "pil".

The family claims files with a ``MODEL.LCRNET`` section and otherwise behaves as the detector family
(same architecture key, run folders and finalisation), like DensePose.
"""
from typing import Mapping

from yacs.config import CfgNode as CN

from .detector import DETECTOR_CONFIG, add_detector_config
from .family import ConfigFamily, register_config_family

# Pose proposals integration: how proposals are grouped into people (lcrnet.md 4.1, 4.5).
GROUPING_BOXES = ("pose", "roi")
# How images are resized: "opencv" as Detectron (cv2.INTER_LINEAR by one scale factor, lcrnet.md 3.1), "pil" as
# detectron2 (the detector's default).
RESIZE_LIBRARIES = ("opencv", "pil")


def _add_lcrnet(model: CN) -> None:
    lcr = model.LCRNET = CN()
    # The anchor poses (K, 5J) and their PPI parameters: npz or json of posekit.models.lcrnet.anchors.
    lcr.ANCHORS_FILE = "data/lcrnet/InTheWild-ResNet50_anchors.npz"
    # K and J must equal the anchor file's (the release's K pitfall, lcrnet.md 4.4: never assume them).
    lcr.NUM_ANCHOR_POSES = 20
    lcr.NUM_JOINTS = 13
    # pose_pred's raw output is divided by this in forward (the release's 5, lcrnet.md 3.6).
    lcr.POSE_REG_WEIGHT = 5.0
    # Smooth-L1 on the true class's slot, unit per-coordinate weights, summed and divided by the sampled RoIs
    # (lcrnet.md 3.7); LOSS_WEIGHT scales the whole term (the public trainer's x65 is not reproduced).
    lcr.POSE_SMOOTH_L1_BETA = 1.0
    lcr.POSE_LOSS_WEIGHT = 1.0
    lcr.CLS_LOSS_WEIGHT = 1.0
    _add_ppi(lcr)
    _add_evaluation(lcr)


def _add_ppi(lcr: CN) -> None:
    ppi = lcr.PPI = CN()
    # "roi": NAVER's improved PPI (RPN boxes), posekit's default (docs/differences.md); "pose": the release
    # (boxes of the proposals' joints).
    ppi.GROUPING_BOXES = "roi"
    # The five thresholds of lcrnet.md 4.3; negative / "" take the anchor file's ppi_params.
    ppi.TH_POSE3D = -1.0
    ppi.TH_IOU = -1.0
    ppi.IOU_FUNC = ""
    ppi.MIN_MODE_SCORE = -1.0
    ppi.TH_PERSONDETECT = -1.0
    # Proposal filter (lcrnet.md 3.8): score >= SCORE_THRESHOLD (negative: 0.1 / K), keeping at least
    # min(MIN_PROPOSALS, R K - 1) pairs (500 = the release, 0 = NAVER).
    ppi.SCORE_THRESHOLD = -1.0
    ppi.MIN_PROPOSALS = 0
    # Weight of upper-body classes' lower-body joints in a mode's mean (lcrnet.md 4.1 step 3).
    ppi.UPPER_BODY_WEIGHT = 0.1
    # True reproduces the release demos, which pass K for K_full and so never down-weight (lcrnet.md 4.4).
    ppi.RELEASE_K_PITFALL = False


def _add_evaluation(lcr: CN) -> None:
    evaluation = lcr.EVALUATION = CN()
    # Detections are matched to the ground truth by the IoU of their joints' boxes, at least this (lcrnet.md 6.1).
    evaluation.MATCH_IOU = 0.5
    # The 3D root both poses are re-centred on before MPJPE: "pelvis" (hip midpoint, Human3.6M's) or "torso"
    # (mean of hips and shoulders, the LCR origin). 3DPCK (150 mm) and 2D PCK are posekit.evaluation.pose3d's.
    evaluation.ROOT = "pelvis"


def add_lcrnet_config(cfg: CN) -> None:
    """Add the detector's keys and LCR-Net's (``MODEL.LCRNET``, ``INPUT.RESIZE_LIBRARY``, ``SOLVER.MAX_TIME``) to
    ``cfg``, in place."""
    add_detector_config(cfg)
    cfg.MODEL.META_ARCHITECTURE = "LCRNet"
    cfg.MODEL.ROI_HEADS.NAME = "LCRNetROIHeads"
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 1  # person: the sampler's foreground; anchor classes come from the poses
    _add_lcrnet(cfg.MODEL)
    cfg.INPUT.RESIZE_LIBRARY = "opencv"
    cfg.SOLVER.MAX_TIME = 0.0


def _claims(mapping: Mapping) -> bool:
    model = mapping.get("MODEL")
    return isinstance(model, Mapping) and "LCRNET" in model


LCRNET_CONFIG = register_config_family(ConfigFamily(
    name="lcrnet", add_config=add_lcrnet_config, claims=_claims,
    architecture_key=DETECTOR_CONFIG.architecture_key, run_folders=DETECTOR_CONFIG.run_folders,
    finalize=DETECTOR_CONFIG.finalize, priority=2))
