"""DensePose R-CNN's training recipe: the detector's records, solver and batching, with the DensePose mapper."""
from typing import Type

from yacs.config import CfgNode

from ...data.collate import collate_instances_batch
from ...data.densepose_mapper import DensePoseMapper
from ...data.mapped_dataset import MappedDataset
from ..detector.training import detector_solver, training_records
from ..family import TrainingSetup


def densepose_training(cfg: CfgNode, mapper_class: Type[DensePoseMapper] = DensePoseMapper) -> TrainingSetup:
    """DATASETS.TRAIN through the DensePose mapper (gt_densepose per person; a family may pass a subclass),
    batched as lists; SOLVER.* as for the detector."""
    dataset = MappedDataset(training_records(cfg), mapper_class.from_config(cfg, is_train=True), cfg.SEED)
    return TrainingSetup(dataset=dataset, solver=detector_solver(cfg), collate_fn=collate_instances_batch,
                         checkpoint_period=cfg.SOLVER.CHECKPOINT_PERIOD)
