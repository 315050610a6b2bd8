"""DEKR's config section: every key of the official DEKR ``lib/config/default.py`` plus posekit's own.

Official keys keep their names and defaults so the official experiment yaml files load unmodified.
Keys the official code declares but never reads are kept for that reason; they and the keys posekit
does not read are listed in docs/differences.md.
"""
import logging
import os
from typing import Mapping

from yacs.config import CfgNode as CN

from ..utils.errors import ConfigError
from .family import ConfigFamily, register_config_family

logger = logging.getLogger(__name__)

# Keys the official code reads that posekit does not; a file setting one away from its default gets a warning.
NOT_HONOURED = {
    "GPUS": "start one process per GPU with torchrun --nproc_per_node N; TRAIN.IMAGES_PER_GPU is per process",
    "RANK": "torchrun gives every process its rank",
    "MULTIPROCESSING_DISTRIBUTED": "posekit always runs one process per device, started by torchrun",
}


def add_dekr_config(cfg: CN) -> None:
    """Add DEKR's keys (official names and defaults) to the base tree ``cfg``, in place."""
    cfg.NAME = "regression"
    cfg.DATA_DIR = ""
    cfg.GPUS = (0,)
    cfg.RANK = 0
    cfg.VERBOSE = True
    cfg.MULTIPROCESSING_DISTRIBUTED = True

    cfg.MODEL = CN()
    cfg.MODEL.NAME = "hrnet_dekr"
    cfg.MODEL.INIT_WEIGHTS = True
    cfg.MODEL.PRETRAINED = ""
    cfg.MODEL.NUM_JOINTS = 17
    cfg.MODEL.SPEC = CN(new_allowed=True)

    cfg.LOSS = CN()
    cfg.LOSS.WITH_HEATMAPS_LOSS = True
    cfg.LOSS.HEATMAPS_LOSS_FACTOR = 1.0
    cfg.LOSS.WITH_OFFSETS_LOSS = True
    cfg.LOSS.OFFSETS_LOSS_FACTOR = 1.0

    cfg.DATASET = CN()
    cfg.DATASET.ROOT = ""
    cfg.DATASET.DATASET = "coco_kpt"
    cfg.DATASET.DATASET_TEST = ""
    cfg.DATASET.NUM_JOINTS = 17
    cfg.DATASET.MAX_NUM_PEOPLE = 30
    cfg.DATASET.TRAIN = "train2017"
    cfg.DATASET.TEST = "val2017"
    cfg.DATASET.DATA_FORMAT = "jpg"
    cfg.DATASET.MAX_ROTATION = 30
    cfg.DATASET.MIN_SCALE = 0.75
    cfg.DATASET.MAX_SCALE = 1.25
    cfg.DATASET.SCALE_TYPE = "short"
    cfg.DATASET.MAX_TRANSLATE = 40
    cfg.DATASET.INPUT_SIZE = 512
    cfg.DATASET.OUTPUT_SIZE = 128
    cfg.DATASET.FLIP = 0.5
    cfg.DATASET.SIGMA = 2.0
    cfg.DATASET.CENTER_SIGMA = 4.0
    cfg.DATASET.BG_WEIGHT = 0.1
    cfg.DATASET.OFFSET_RADIUS = 4
    # posekit: the keypoint set (names, flip pairs, sigmas, skeleton): a registered name or a yaml/json file;
    # "" derives it from DATASET.DATASET (custom: from the annotation json's categories[].keypoints).
    cfg.DATASET.KEYPOINT_SET = ""
    # posekit: annotation json and image folder (or .zip) of each split given directly, relative to ROOT
    # ("" = where the DATASET.DATASET layout puts them).
    cfg.DATASET.TRAIN_ANNOTATIONS = ""
    cfg.DATASET.TRAIN_IMAGES = ""
    cfg.DATASET.TEST_ANNOTATIONS = ""
    cfg.DATASET.TEST_IMAGES = ""
    # posekit: leave out images the json lists but the image folder lacks (one warning) instead of failing.
    cfg.DATASET.SKIP_MISSING_IMAGES = False

    cfg.TRAIN = CN()
    cfg.TRAIN.LR_FACTOR = 0.1
    cfg.TRAIN.LR_STEP = [90, 110]
    cfg.TRAIN.LR = 0.001
    cfg.TRAIN.OPTIMIZER = "adam"
    cfg.TRAIN.MOMENTUM = 0.9
    cfg.TRAIN.WD = 0.0001
    cfg.TRAIN.NESTEROV = False
    cfg.TRAIN.GAMMA1 = 0.99
    cfg.TRAIN.GAMMA2 = 0.0
    cfg.TRAIN.BEGIN_EPOCH = 0
    cfg.TRAIN.END_EPOCH = 140
    cfg.TRAIN.RESUME = False
    cfg.TRAIN.CHECKPOINT = ""
    cfg.TRAIN.IMAGES_PER_GPU = 32
    cfg.TRAIN.SHUFFLE = True
    # posekit: mixed precision: "" (off), "bf16" or "fp16".
    cfg.TRAIN.AMP = ""
    # posekit: stop each epoch after this many iterations (0 = the whole epoch); for short runs and tests.
    cfg.TRAIN.MAX_ITERS_PER_EPOCH = 0
    # posekit: stop training after this many seconds of wall time (0 = no limit), checkpointing first.
    cfg.TRAIN.MAX_TIME = 0.0

    cfg.TEST = CN()
    cfg.TEST.IMAGES_PER_GPU = 32
    cfg.TEST.FLIP_TEST = True
    cfg.TEST.SCALE_FACTOR = [1]
    cfg.TEST.MODEL_FILE = ""
    cfg.TEST.POOL_THRESHOLD1 = 300
    cfg.TEST.POOL_THRESHOLD2 = 200
    cfg.TEST.NMS_THRE = 0.15
    cfg.TEST.NMS_NUM_THRE = 10
    cfg.TEST.KEYPOINT_THRESHOLD = 0.01
    cfg.TEST.DECREASE = 1.0
    cfg.TEST.MATCH_HMP = False
    cfg.TEST.ADJUST_THRESHOLD = 0.05
    cfg.TEST.MAX_ABSORB_DISTANCE = 75
    cfg.TEST.GUASSIAN_KERNEL = 6
    cfg.TEST.LOG_PROGRESS = True
    # posekit: [[metric, value, tolerance], ...] checked by tools/valid.py after evaluation.
    cfg.TEST.EXPECTED_RESULTS = []
    # posekit: stop after this many images (0 = all); for quick checks.
    cfg.TEST.MAX_IMAGES = 0

    cfg.RESCORE = CN()
    cfg.RESCORE.VALID = True
    cfg.RESCORE.GET_DATA = False
    cfg.RESCORE.END_EPOCH = 20
    cfg.RESCORE.LR = 0.001
    cfg.RESCORE.HIDDEN_LAYER = 256
    cfg.RESCORE.BATCHSIZE = 1024
    cfg.RESCORE.MODEL_FILE = "model/rescore/final_rescore_coco_kpt.pth"
    cfg.RESCORE.DATA_FILE = "data/rescore_data/rescore_dataset_train_coco_kpt"

def _resolve_data_dir(cfg: CN) -> None:
    """Join relative data paths to DATA_DIR as the official ``update_config`` does."""
    if not cfg.DATA_DIR:
        return
    if not os.path.exists(cfg.DATASET.ROOT):
        cfg.DATASET.ROOT = os.path.join(cfg.DATA_DIR, cfg.DATASET.ROOT)
    cfg.MODEL.PRETRAINED = os.path.join(cfg.DATA_DIR, cfg.MODEL.PRETRAINED)
    if cfg.TEST.MODEL_FILE:
        cfg.TEST.MODEL_FILE = os.path.join(cfg.DATA_DIR, cfg.TEST.MODEL_FILE)


def _finalize(cfg: CN, mapping: Mapping) -> None:
    """Resolve DATA_DIR, check MODEL.NUM_JOINTS, and say which official keys posekit does not honour."""
    _resolve_data_dir(cfg)
    if cfg.MODEL.NUM_JOINTS != cfg.DATASET.NUM_JOINTS:
        raise ConfigError(f"MODEL.NUM_JOINTS ({cfg.MODEL.NUM_JOINTS}) differs from DATASET.NUM_JOINTS "
                          f"({cfg.DATASET.NUM_JOINTS}); the network is built with DATASET.NUM_JOINTS, set both alike")
    defaults = CN()
    add_dekr_config(defaults)
    ignored = [f"{key} {cfg[key]!r} ({reason})" for key, reason in NOT_HONOURED.items()
               if cfg[key] != defaults[key]]
    if ignored:
        logger.warning("config keys the official DEKR reads but posekit ignores: %s", "; ".join(ignored))


def _dataset_folder(cfg: CN) -> str:
    """The data set actually used: the ``custom`` root's folder name, else a keypoint set file's name, else
    DATASET.DATASET (the official folder names)."""
    stem, extension = os.path.splitext(os.path.basename(cfg.DATASET.KEYPOINT_SET))
    if cfg.DATASET.DATASET == "custom":
        # ROOT '', '.', '..' or '/' names no data set: 'custom'.
        return os.path.basename(os.path.normpath(cfg.DATASET.ROOT)).strip(".") or "custom"
    if extension.lower() in (".yaml", ".yml", ".json"):
        return stem
    return cfg.DATASET.DATASET.replace(":", "_")


def _run_folders(cfg: CN) -> tuple:
    return _dataset_folder(cfg), cfg.MODEL.NAME


def _claims(mapping: Mapping) -> bool:
    model = mapping.get("MODEL")
    return isinstance(model, Mapping) and model.get("NAME") == "hrnet_dekr"


DEKR_CONFIG = register_config_family(ConfigFamily(
    name="dekr", add_config=add_dekr_config, claims=_claims, architecture_key="MODEL.NAME",
    run_folders=_run_folders, finalize=_finalize))
