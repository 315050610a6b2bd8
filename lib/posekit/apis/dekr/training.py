"""DEKR's training recipe in the shared trainer's terms: the augmented data set and TRAIN.* as solver settings."""
from yacs.config import CfgNode

from ...data import build_dataset
from ...engine import Schedule, SolverSettings, clipping_from_cfg
from ..family import TrainingSetup


def dekr_solver(cfg: CfgNode) -> SolverSettings:
    """TRAIN.*: Adam or SGD at TRAIN.LR, x LR_FACTOR after each epoch in LR_STEP, from BEGIN_EPOCH to END_EPOCH."""
    schedule = Schedule(unit="epoch", length=cfg.TRAIN.END_EPOCH, steps=tuple(cfg.TRAIN.LR_STEP),
                        gamma=cfg.TRAIN.LR_FACTOR, start=cfg.TRAIN.BEGIN_EPOCH)
    return SolverSettings(optimizer=cfg.TRAIN.OPTIMIZER, optimizer_key="TRAIN.OPTIMIZER", base_lr=cfg.TRAIN.LR,
                          schedule=schedule, images_per_batch=cfg.TRAIN.IMAGES_PER_GPU, momentum=cfg.TRAIN.MOMENTUM,
                          nesterov=cfg.TRAIN.NESTEROV, weight_decay=cfg.TRAIN.WD, clip_gradients=clipping_from_cfg(cfg),
                          amp=cfg.TRAIN.AMP, max_time=cfg.TRAIN.MAX_TIME,
                          max_iters_per_epoch=cfg.TRAIN.MAX_ITERS_PER_EPOCH)


def dekr_training(cfg: CfgNode) -> TrainingSetup:
    """The DATASET.TRAIN split with DEKR's augmentation and targets, and the TRAIN.* recipe."""
    return TrainingSetup(dataset=build_dataset(cfg, is_train=True), solver=dekr_solver(cfg))
