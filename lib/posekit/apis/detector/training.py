"""The detector's training recipe in the shared trainer's terms: catalog records, detectron2's SOLVER keys."""
import logging
import tempfile
from pathlib import Path
from typing import Callable, List

import torch.distributed as dist
from torch import nn
from yacs.config import CfgNode

from ...data.catalog import get_dataset_records
from ...data.collate import collate_instances_batch
from ...data.detection_mapper import DetectionMapper, filter_images_without_instances
from ...data.mapped_dataset import MappedDataset
from ...engine import Hook, PeriodicEvaluation, Schedule, SolverSettings, clipping_from_cfg
from ...utils.errors import ConfigError
from ..family import TrainingSetup
from .validation import box_ap

logger = logging.getLogger(__name__)


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def detector_solver(cfg: CfgNode) -> SolverSettings:
    """SOLVER.*: SGD with warm-up and steps (detectron2's WarmupMultiStepLR), IMS_PER_BATCH over all processes."""
    solver = cfg.SOLVER
    world = _world_size()
    if solver.IMS_PER_BATCH % world:
        raise ConfigError(f"SOLVER.IMS_PER_BATCH ({solver.IMS_PER_BATCH}) must be divisible by the number of "
                          f"processes ({world})")
    if solver.LR_SCHEDULER_NAME != "WarmupMultiStepLR":
        raise ConfigError(f"SOLVER.LR_SCHEDULER_NAME: only 'WarmupMultiStepLR' is available, got "
                          f"'{solver.LR_SCHEDULER_NAME}'")
    schedule = Schedule(unit="iteration", length=solver.MAX_ITER, steps=tuple(solver.STEPS), gamma=solver.GAMMA,
                        warmup_iters=solver.WARMUP_ITERS, warmup_factor=solver.WARMUP_FACTOR,
                        warmup_method=solver.WARMUP_METHOD)
    return SolverSettings(optimizer="sgd", base_lr=solver.BASE_LR, schedule=schedule,
                          images_per_batch=solver.IMS_PER_BATCH // world, momentum=solver.MOMENTUM,
                          nesterov=solver.NESTEROV, weight_decay=solver.WEIGHT_DECAY,
                          weight_decay_norm=solver.WEIGHT_DECAY_NORM, weight_decay_bias=solver.WEIGHT_DECAY_BIAS,
                          bias_lr_factor=solver.BIAS_LR_FACTOR, clip_gradients=clipping_from_cfg(cfg),
                          amp="fp16" if solver.AMP.ENABLED else "")


def training_records(cfg: CfgNode) -> List[dict]:
    """The records of every DATASETS.TRAIN name, in order; without instances dropped when the config says so."""
    if not cfg.DATASETS.TRAIN:
        raise ConfigError("DATASETS.TRAIN is empty: name at least one registered data set, e.g. coco_2017_train")
    records = [record for name in cfg.DATASETS.TRAIN for record in get_dataset_records(name)]
    if cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS:
        records = filter_images_without_instances(records)
    if not records:
        raise ConfigError(f"DATASETS.TRAIN {list(cfg.DATASETS.TRAIN)}: no image with an annotated instance")
    return records


def evaluation_hooks(cfg: CfgNode, evaluate: Callable[[CfgNode, nn.Module, Path], object]) -> List[Hook]:
    """Evaluation every TEST.EVAL_PERIOD iterations and at the end (none when the period is 0), results in a
    temporary folder: the metrics go to the log."""
    if cfg.TEST.EVAL_PERIOD <= 0:
        return []

    def run(model: nn.Module):
        with tempfile.TemporaryDirectory() as folder:
            return evaluate(cfg, model, Path(folder))
    return [PeriodicEvaluation(cfg.TEST.EVAL_PERIOD, run)]


def detector_training(cfg: CfgNode) -> TrainingSetup:
    """DATASETS.TRAIN through the detection mapper, batched as lists; SOLVER.* as solver settings; box AP every
    TEST.EVAL_PERIOD iterations."""
    dataset = MappedDataset(training_records(cfg), DetectionMapper.from_config(cfg, is_train=True), cfg.SEED)
    return TrainingSetup(dataset=dataset, solver=detector_solver(cfg), collate_fn=collate_instances_batch,
                         checkpoint_period=cfg.SOLVER.CHECKPOINT_PERIOD,
                         hooks=evaluation_hooks(cfg, lambda cfg, model, folder: box_ap(cfg, model, folder, False)))
