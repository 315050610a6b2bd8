"""DensePose R-CNN's config section: detectron2 DensePose's keys and defaults on top of the detector's.

With these keys detectron2's DensePose files (``Base-DensePose-RCNN-FPN.yaml`` and the ``densepose_rcnn_*``
files built on it, legacy, DeepLab, confidence and HRFPN variants) load unmodified (densepose.md 2.1-2.3).
The family claims files with ``MODEL.ROI_DENSEPOSE_HEAD`` or ``MODEL.DENSEPOSE_ON`` and otherwise behaves
as the detector family: same architecture key, run folders and finalisation.
"""
from typing import Mapping

from yacs.config import CfgNode as CN

from .detector import DETECTOR_CONFIG, add_detector_config
from .family import ConfigFamily, register_config_family


def _add_head(model: CN) -> None:
    head = model.ROI_DENSEPOSE_HEAD = CN()
    head.NAME = ""
    head.NUM_STACKED_CONVS = 8
    head.NUM_PATCHES = 24  # surface charts; I, U and V have NUM_PATCHES + 1 channels (background first)
    head.DECONV_KERNEL = 4
    head.CONV_HEAD_DIM = 512
    head.CONV_HEAD_KERNEL = 3
    head.UP_SCALE = 2
    head.HEATMAP_SIZE = 112
    head.POOLER_TYPE = "ROIAlignV2"
    head.POOLER_RESOLUTION = 28
    head.POOLER_SAMPLING_RATIO = 2
    head.NUM_COARSE_SEGM_CHANNELS = 2  # 2 (foreground / background) or 15 (legacy: 14 parts + background)
    head.FG_IOU_THRESHOLD = 0.7
    head.INDEX_WEIGHTS = 5.0
    head.PART_WEIGHTS = 1.0
    head.POINT_REGRESSION_WEIGHTS = 0.01
    head.COARSE_SEGM_TRAINED_BY_MASKS = False
    # The Panoptic-FPN decoder merging the pooled levels into one stride-4 map (densepose.md 2.1).
    head.DECODER_ON = True
    head.DECODER_NUM_CLASSES = 256
    head.DECODER_CONV_DIMS = 256
    head.DECODER_NORM = ""
    head.DECODER_COMMON_STRIDE = 4
    head.DEEPLAB = CN()
    head.DEEPLAB.NORM = "GN"
    head.DEEPLAB.NONLOCAL_ON = 0
    head.PREDICTOR_NAME = "DensePoseChartWithConfidencePredictor"
    head.LOSS_NAME = "DensePoseChartWithConfidenceLoss"
    head.UV_CONFIDENCE = CN({"ENABLED": False})
    head.UV_CONFIDENCE.EPSILON = 0.01
    head.UV_CONFIDENCE.TYPE = "iid_iso"
    head.SEGM_CONFIDENCE = CN({"ENABLED": False})
    head.SEGM_CONFIDENCE.EPSILON = 0.01
    _add_cse(head)


def _add_cse(head: CN) -> None:
    """Continuous surface embeddings: no posekit model uses them, but their files must still load."""
    cse = head.CSE = CN()
    cse.EMBED_SIZE = 16
    cse.EMBEDDERS = CN(new_allowed=True)
    cse.EMBEDDING_DIST_GAUSS_SIGMA = 0.01
    cse.GEODESIC_DIST_GAUSS_SIGMA = 0.01
    cse.EMBED_LOSS_WEIGHT = 0.6
    cse.EMBED_LOSS_NAME = "EmbeddingLoss"
    cse.FEATURES_LR_FACTOR = 1.0
    cse.EMBEDDING_LR_FACTOR = 1.0
    shape_cycle = cse.SHAPE_TO_SHAPE_CYCLE_LOSS = CN({"ENABLED": False})
    shape_cycle.WEIGHT = 0.025
    shape_cycle.NORM_P = 2
    shape_cycle.TEMPERATURE = 0.05
    shape_cycle.MAX_NUM_VERTICES = 4936
    pixel_cycle = cse.PIX_TO_SHAPE_CYCLE_LOSS = CN({"ENABLED": False})
    pixel_cycle.WEIGHT = 0.0001
    pixel_cycle.NORM_P = 2
    pixel_cycle.USE_ALL_MESHES_NOT_GT_ONLY = False
    pixel_cycle.NUM_PIXELS_TO_SAMPLE = 100
    pixel_cycle.PIXEL_SIGMA = 5.0
    pixel_cycle.TEMPERATURE_PIXEL_TO_VERTEX = 0.05
    pixel_cycle.TEMPERATURE_VERTEX_TO_PIXEL = 0.05


def _add_evaluation_and_bootstrap(cfg: CN) -> None:
    evaluation = cfg.DENSEPOSE_EVALUATION = CN()
    evaluation.TYPE = "iou"
    evaluation.STORAGE = "none"
    evaluation.MIN_IOU_THRESHOLD = 0.5
    evaluation.DISTRIBUTED_INFERENCE = True
    evaluation.EVALUATE_MESH_ALIGNMENT = False
    evaluation.MESH_ALIGNMENT_MESH_NAMES = []
    # posekit: the folder holding SMPL_subdiv.mat, SMPL_SUBDIV_TRANSFORM.mat and Pdist_matrix.pkl (user-provided;
    # detectron2 fetches them by URL). Without it tools/valid.py reports box AP only.
    evaluation.DATA_DIR = "data/densepose_eval"
    # posekit: the DensePose release's UV_symmetry_transforms.mat (user-provided), needed to flip in training.
    cfg.DENSEPOSE_DATA = CN()
    cfg.DENSEPOSE_DATA.UV_SYMMETRY_FILE = "data/densepose/UV_symmetry_transforms.mat"
    cfg.BOOTSTRAP_DATASETS = []
    cfg.BOOTSTRAP_MODEL = CN()
    cfg.BOOTSTRAP_MODEL.WEIGHTS = ""
    cfg.BOOTSTRAP_MODEL.DEVICE = "cuda"


def add_densepose_config(cfg: CN) -> None:
    """Add the detector's keys and detectron2 DensePose's (names and defaults) to ``cfg``, in place."""
    add_detector_config(cfg)
    cfg.MODEL.DENSEPOSE_ON = True
    _add_head(cfg.MODEL)
    # Rotation augmentation angles (training) and rotation test-time augmentation.
    cfg.INPUT.ROTATION_ANGLES = [0]
    cfg.TEST.AUG.ROTATION_ANGLES = ()
    cfg.DATASETS.CATEGORY_MAPS = CN(new_allowed=True)
    cfg.DATASETS.WHITELISTED_CATEGORIES = CN(new_allowed=True)
    cfg.DATASETS.CLASS_TO_MESH_NAME_MAPPING = CN(new_allowed=True)
    _add_evaluation_and_bootstrap(cfg)


def _claims(mapping: Mapping) -> bool:
    model = mapping.get("MODEL")
    return isinstance(model, Mapping) and ("ROI_DENSEPOSE_HEAD" in model or "DENSEPOSE_ON" in model)


DENSEPOSE_CONFIG = register_config_family(ConfigFamily(
    name="densepose", add_config=add_densepose_config, claims=_claims,
    architecture_key=DETECTOR_CONFIG.architecture_key, run_folders=DETECTOR_CONFIG.run_folders,
    finalize=DETECTOR_CONFIG.finalize, priority=2))
