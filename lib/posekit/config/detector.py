"""The two-stage detector's config section: detectron2's keys with detectron2's defaults.

DensePose R-CNN (and KTN / AMANet) and LCR-Net files are detectron2- or Detectron-style yaml files; with
these keys they load unmodified, ``_BASE_`` chains included. Detectron (v1) conventions that LCR-Net needs
are values of these keys (e.g. ``MODEL.LEGACY_PLUS_ONE``, ``MODEL.RESNETS.NORM: AffineChannel``), not a
second code path. Where posekit's base tree already has a key under its own name (``DEVICE``, ``WORKERS``,
``CUDNN.BENCHMARK``), the detectron2 key wins when a file sets it (``_finalize``).
"""
from typing import Mapping

from yacs.config import CfgNode as CN

from .family import ConfigFamily, register_config_family


def _add_model(cfg: CN) -> None:
    model = cfg.MODEL = CN()
    model.META_ARCHITECTURE = "GeneralizedRCNN"
    # posekit: "" picks cuda when available (detectron2's default is "cuda").
    model.DEVICE = ""
    model.WEIGHTS = ""
    model.LOAD_PROPOSALS = False
    model.MASK_ON = False
    model.KEYPOINT_ON = False
    # Caffe-style BGR means and unit std of the MSRA ImageNet weights.
    model.PIXEL_MEAN = [103.530, 116.280, 123.675]
    model.PIXEL_STD = [1.0, 1.0, 1.0]
    # posekit: Detectron (v1) boxes: widths x2 - x1 + 1, clipping to W - 1 (LCR-Net's convention).
    model.LEGACY_PLUS_ONE = False

    model.BACKBONE = CN()
    model.BACKBONE.NAME = "build_resnet_backbone"
    model.BACKBONE.FREEZE_AT = 2

    model.FPN = CN()
    model.FPN.IN_FEATURES = []
    model.FPN.OUT_CHANNELS = 256
    model.FPN.NORM = ""
    model.FPN.FUSE_TYPE = "sum"

    model.PROPOSAL_GENERATOR = CN()
    model.PROPOSAL_GENERATOR.NAME = "RPN"
    model.PROPOSAL_GENERATOR.MIN_SIZE = 0

    model.ANCHOR_GENERATOR = CN()
    model.ANCHOR_GENERATOR.NAME = "DefaultAnchorGenerator"
    model.ANCHOR_GENERATOR.SIZES = [[32, 64, 128, 256, 512]]
    model.ANCHOR_GENERATOR.ASPECT_RATIOS = [[0.5, 1.0, 2.0]]
    model.ANCHOR_GENERATOR.ANGLES = [[-90, 0, 90]]
    model.ANCHOR_GENERATOR.OFFSET = 0.0

    _add_rpn(model)
    _add_roi_heads(model)
    _add_resnets(model)
    _add_hrnet(model)


def _add_rpn(model: CN) -> None:
    rpn = model.RPN = CN()
    rpn.HEAD_NAME = "StandardRPNHead"
    rpn.IN_FEATURES = ["res4"]
    rpn.BOUNDARY_THRESH = -1
    rpn.IOU_THRESHOLDS = [0.3, 0.7]
    rpn.IOU_LABELS = [0, -1, 1]
    rpn.BATCH_SIZE_PER_IMAGE = 256
    rpn.POSITIVE_FRACTION = 0.5
    rpn.BBOX_REG_LOSS_TYPE = "smooth_l1"
    rpn.BBOX_REG_LOSS_WEIGHT = 1.0
    rpn.BBOX_REG_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
    rpn.SMOOTH_L1_BETA = 0.0
    rpn.LOSS_WEIGHT = 1.0
    rpn.PRE_NMS_TOPK_TRAIN = 12000
    rpn.PRE_NMS_TOPK_TEST = 6000
    rpn.POST_NMS_TOPK_TRAIN = 2000
    rpn.POST_NMS_TOPK_TEST = 1000
    rpn.NMS_THRESH = 0.7
    rpn.CONV_DIMS = [-1]


def _add_roi_heads(model: CN) -> None:
    heads = model.ROI_HEADS = CN()
    heads.NAME = "Res5ROIHeads"
    heads.NUM_CLASSES = 80
    heads.IN_FEATURES = ["res4"]
    heads.IOU_THRESHOLDS = [0.5]
    heads.IOU_LABELS = [0, 1]
    heads.BATCH_SIZE_PER_IMAGE = 512
    heads.POSITIVE_FRACTION = 0.25
    heads.SCORE_THRESH_TEST = 0.05
    heads.NMS_THRESH_TEST = 0.5
    heads.PROPOSAL_APPEND_GT = True

    box = model.ROI_BOX_HEAD = CN()
    box.NAME = ""
    box.BBOX_REG_LOSS_TYPE = "smooth_l1"
    box.BBOX_REG_LOSS_WEIGHT = 1.0
    box.BBOX_REG_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
    box.SMOOTH_L1_BETA = 0.0
    box.POOLER_RESOLUTION = 14
    box.POOLER_SAMPLING_RATIO = 0
    box.POOLER_TYPE = "ROIAlignV2"
    box.NUM_FC = 0
    box.FC_DIM = 1024
    box.NUM_CONV = 0
    box.CONV_DIM = 256
    box.NORM = ""
    box.CLS_AGNOSTIC_BBOX_REG = False
    box.TRAIN_ON_PRED_BOXES = False

    mask = model.ROI_MASK_HEAD = CN()
    mask.NAME = "MaskRCNNConvUpsampleHead"
    mask.POOLER_RESOLUTION = 14
    mask.POOLER_SAMPLING_RATIO = 0
    mask.NUM_CONV = 0
    mask.CONV_DIM = 256
    mask.NORM = ""
    mask.CLS_AGNOSTIC_MASK = False
    mask.POOLER_TYPE = "ROIAlignV2"

    keypoint = model.ROI_KEYPOINT_HEAD = CN()
    keypoint.NAME = "KRCNNConvDeconvUpsampleHead"
    keypoint.POOLER_RESOLUTION = 14
    keypoint.POOLER_SAMPLING_RATIO = 0
    keypoint.POOLER_TYPE = "ROIAlignV2"
    keypoint.CONV_DIMS = tuple(512 for _ in range(8))
    keypoint.NUM_KEYPOINTS = 17
    keypoint.MIN_KEYPOINTS_PER_IMAGE = 1
    keypoint.NORMALIZE_LOSS_BY_VISIBLE_KEYPOINTS = True
    keypoint.LOSS_WEIGHT = 1.0


def _add_resnets(model: CN) -> None:
    resnets = model.RESNETS = CN()
    resnets.DEPTH = 50
    resnets.OUT_FEATURES = ["res4"]
    resnets.NUM_GROUPS = 1
    # "FrozenBN" (detectron2), "AffineChannel" (Detectron v1: no statistics, no eps), "BN", "GN".
    resnets.NORM = "FrozenBN"
    resnets.WIDTH_PER_GROUP = 64
    resnets.STRIDE_IN_1X1 = True
    resnets.RES5_DILATION = 1
    resnets.RES2_OUT_CHANNELS = 256
    resnets.STEM_OUT_CHANNELS = 64
    resnets.DEFORM_ON_PER_STAGE = [False, False, False, False]
    resnets.DEFORM_MODULATED = False
    resnets.DEFORM_NUM_GROUPS = 1


def _add_hrnet(model: CN) -> None:
    """HRNet-W32 + HRFPN (detectron2 DensePose's ``add_hrnet_config``) for ``build_hrfpn_backbone``."""
    hrnet = model.HRNET = CN()
    hrnet.STEM_INPLANES = 64
    for index, (modules, channels) in enumerate([(1, [32, 64]), (4, [32, 64, 128]), (3, [32, 64, 128, 256])]):
        stage = hrnet[f"STAGE{index + 2}"] = CN()
        stage.NUM_MODULES = modules
        stage.NUM_BRANCHES = len(channels)
        stage.BLOCK = "BASIC"
        stage.NUM_BLOCKS = [4] * len(channels)
        stage.NUM_CHANNELS = channels
        stage.FUSE_METHOD = "SUM"
    hrnet.HRFPN = CN()
    hrnet.HRFPN.OUT_CHANNELS = 256


def _add_input_and_data(cfg: CN) -> None:
    cfg.INPUT = CN()
    cfg.INPUT.MIN_SIZE_TRAIN = (800,)
    cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING = "choice"
    cfg.INPUT.MAX_SIZE_TRAIN = 1333
    cfg.INPUT.MIN_SIZE_TEST = 800
    cfg.INPUT.MAX_SIZE_TEST = 1333
    cfg.INPUT.RANDOM_FLIP = "horizontal"
    cfg.INPUT.FORMAT = "BGR"
    cfg.INPUT.MASK_FORMAT = "polygon"
    cfg.INPUT.CROP = CN()
    cfg.INPUT.CROP.ENABLED = False
    cfg.INPUT.CROP.TYPE = "relative_range"
    cfg.INPUT.CROP.SIZE = [0.9, 0.9]

    cfg.DATASETS = CN()
    cfg.DATASETS.TRAIN = ()
    cfg.DATASETS.PROPOSAL_FILES_TRAIN = ()
    cfg.DATASETS.PRECOMPUTED_PROPOSAL_TOPK_TRAIN = 2000
    cfg.DATASETS.TEST = ()
    cfg.DATASETS.PROPOSAL_FILES_TEST = ()
    cfg.DATASETS.PRECOMPUTED_PROPOSAL_TOPK_TEST = 1000

    cfg.DATALOADER = CN()
    cfg.DATALOADER.NUM_WORKERS = 4
    cfg.DATALOADER.ASPECT_RATIO_GROUPING = True
    cfg.DATALOADER.SAMPLER_TRAIN = "TrainingSampler"
    cfg.DATALOADER.REPEAT_THRESHOLD = 0.0
    cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS = True


def _add_solver_and_test(cfg: CN) -> None:
    solver = cfg.SOLVER  # the base tree's section (CLIP_GRADIENTS) gets detectron2's other keys
    solver.LR_SCHEDULER_NAME = "WarmupMultiStepLR"
    solver.MAX_ITER = 40000
    solver.BASE_LR = 0.001
    solver.MOMENTUM = 0.9
    solver.NESTEROV = False
    solver.WEIGHT_DECAY = 0.0001
    solver.WEIGHT_DECAY_NORM = 0.0
    solver.WEIGHT_DECAY_BIAS = None
    solver.BIAS_LR_FACTOR = 1.0
    solver.GAMMA = 0.1
    solver.STEPS = (30000,)
    solver.WARMUP_FACTOR = 1.0 / 1000
    solver.WARMUP_ITERS = 1000
    solver.WARMUP_METHOD = "linear"
    solver.CHECKPOINT_PERIOD = 5000
    solver.IMS_PER_BATCH = 16
    solver.REFERENCE_WORLD_SIZE = 0
    solver.AMP = CN()
    solver.AMP.ENABLED = False

    cfg.TEST = CN()
    cfg.TEST.EXPECTED_RESULTS = []
    cfg.TEST.EVAL_PERIOD = 0
    cfg.TEST.KEYPOINT_OKS_SIGMAS = []
    cfg.TEST.DETECTIONS_PER_IMAGE = 100
    cfg.TEST.AUG = CN()
    cfg.TEST.AUG.ENABLED = False
    cfg.TEST.AUG.MIN_SIZES = (400, 500, 600, 700, 800, 900, 1000, 1100, 1200)
    cfg.TEST.AUG.MAX_SIZE = 4000
    cfg.TEST.AUG.FLIP = True
    cfg.TEST.PRECISE_BN = CN()
    cfg.TEST.PRECISE_BN.ENABLED = False
    cfg.TEST.PRECISE_BN.NUM_ITER = 200


def add_detector_config(cfg: CN) -> None:
    """Add detectron2's keys for the two-stage detector (detectron2's names and defaults) to ``cfg``, in place."""
    cfg.VERSION = 2
    cfg.CUDNN_BENCHMARK = False
    cfg.VIS_PERIOD = 0
    cfg.GLOBAL = CN()
    cfg.GLOBAL.HACK = 1.0
    _add_model(cfg)
    _add_input_and_data(cfg)
    _add_solver_and_test(cfg)


def _finalize(cfg: CN, mapping: Mapping) -> None:
    """detectron2's names for keys the base tree also has win when the file sets them."""
    if cfg.MODEL.DEVICE:
        cfg.DEVICE = cfg.MODEL.DEVICE
    cfg.WORKERS = cfg.DATALOADER.NUM_WORKERS
    cfg.CUDNN.BENCHMARK = cfg.CUDNN_BENCHMARK


def _claims(mapping: Mapping) -> bool:
    model = mapping.get("MODEL")
    return isinstance(model, Mapping) and "META_ARCHITECTURE" in model


def _run_folders(cfg: CN) -> tuple:
    dataset = cfg.DATASETS.TRAIN[0] if cfg.DATASETS.TRAIN else "no_dataset"
    return dataset, cfg.MODEL.META_ARCHITECTURE.lower()


DETECTOR_CONFIG = register_config_family(ConfigFamily(
    name="detector", add_config=add_detector_config, claims=_claims, architecture_key="MODEL.META_ARCHITECTURE",
    run_folders=_run_folders, finalize=_finalize, priority=1))
