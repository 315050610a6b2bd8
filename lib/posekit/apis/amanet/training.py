"""AMANet's training recipe: DensePose R-CNN's, with the person masks of the semantic branch when SEMSEG_ON."""
from yacs.config import CfgNode

from ...data.semantic_masks import PersonMaskMapper
from ..densepose.training import densepose_training
from ..family import TrainingSetup


def amanet_training(cfg: CfgNode) -> TrainingSetup:
    """DensePose R-CNN's set-up; with SEMSEG_ON the items also carry the rendered person masks (``sem_seg``)."""
    if cfg.MODEL.ROI_DENSEPOSE_HEAD.SEMSEG_ON:
        return densepose_training(cfg, PersonMaskMapper)
    return densepose_training(cfg)
