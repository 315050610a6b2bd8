"""The base configuration every family shares: run folders, device, seed, cuDNN, loader workers, trainer keys.

A family adds its own section with an ``add_<family>_config(cfg)`` function (``config/dekr.py``), as
detectron2 projects do with ``add_densepose_config``. Key names are the official DEKR ones where DEKR
already had them, so the official DEKR experiment files load unmodified.
"""
from yacs.config import CfgNode as CN


def get_base_cfg() -> CN:
    """A fresh base tree: the keys posekit's shared trainer, tools and run folders read for every family."""
    cfg = CN()
    # posekit: the family whose section the tree carries; load_cfg fills it (see posekit.config.family).
    cfg.FAMILY = ""
    cfg.OUTPUT_DIR = ""
    cfg.LOG_DIR = ""
    cfg.WORKERS = 4
    cfg.PIN_MEMORY = True
    cfg.PRINT_FREQ = 20
    cfg.AUTO_RESUME = False
    cfg.DIST_BACKEND = "nccl"
    # posekit: "" picks cuda when available, else cpu; "cpu" or "cuda:1" force a device.
    cfg.DEVICE = ""
    # posekit: seed of Python, NumPy and torch generators for training.
    cfg.SEED = 0

    cfg.CUDNN = CN()
    cfg.CUDNN.BENCHMARK = True
    cfg.CUDNN.DETERMINISTIC = False
    cfg.CUDNN.ENABLED = True

    # Trainer keys with detectron2's names, read by the shared trainer whatever the family.
    cfg.SOLVER = CN()
    cfg.SOLVER.CLIP_GRADIENTS = CN()
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = False
    # "value" clips each element to +-CLIP_VALUE; "norm" scales each parameter's gradient to norm <= CLIP_VALUE;
    # "full_model" scales all gradients together (detectron2's three types).
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "value"
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 1.0
    cfg.SOLVER.CLIP_GRADIENTS.NORM_TYPE = 2.0
    return cfg
