"""LCR-Net's training recipe: the detector's records, solver and batching, with the LCR-Net mapper (gt_poses)
and SOLVER.MAX_TIME; with TEST.EVAL_PERIOD, the 3D pose metrics of DATASETS.TEST[0] every that many steps."""
import dataclasses

from yacs.config import CfgNode

from ...data.collate import collate_instances_batch
from ...data.lcrnet_mapper import LCRNetMapper
from ...data.mapped_dataset import MappedDataset
from ...models.lcrnet import POSE_TRANSFORMS
from ..detector.training import detector_solver, evaluation_hooks, training_records
from ..family import TrainingSetup
from .validation import evaluate_model


def lcrnet_training(cfg: CfgNode) -> TrainingSetup:
    """DATASETS.TRAIN through the LCR-Net mapper, batched as lists; SOLVER.* as for the detector, stopping after
    SOLVER.MAX_TIME seconds when it is positive."""
    mapper = LCRNetMapper.from_config(cfg, is_train=True, pose_transforms=POSE_TRANSFORMS)
    solver = dataclasses.replace(detector_solver(cfg), max_time=float(cfg.SOLVER.MAX_TIME))
    return TrainingSetup(dataset=MappedDataset(training_records(cfg), mapper, cfg.SEED), solver=solver,
                         collate_fn=collate_instances_batch, checkpoint_period=cfg.SOLVER.CHECKPOINT_PERIOD,
                         hooks=evaluation_hooks(cfg, lambda cfg, model, folder: evaluate_model(cfg, model, folder,
                                                                                               False)))
