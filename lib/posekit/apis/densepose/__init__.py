"""DensePose R-CNN's entry points: the estimator, and box-AP validation until the DensePose evaluation lands.

Training is not offered yet: the DensePose losses (densepose.md 2.4) are still to come, and training the
detector alone under a DensePose config would silently produce a model without DensePose.
"""
from yacs.config import CfgNode

from ...utils.errors import ConfigError
from ..detector.validation import run_detector_validation
from ..family import FamilyTools, TrainingSetup, register_family_tools
from .estimator import DensePoseEstimator


def densepose_training(cfg: CfgNode) -> TrainingSetup:
    """Refused for now, in one line: the DensePose losses are not implemented yet."""
    raise ConfigError("DensePose R-CNN training is not available yet (its losses are still to come); "
                      "test and run official weights with tools/valid.py, DensePoseEstimator")


DENSEPOSE_TOOLS = register_family_tools(FamilyTools(
    name="densepose", training=densepose_training, validate=run_detector_validation, estimator=DensePoseEstimator,
    video_demo=None))

__all__ = ["DENSEPOSE_TOOLS", "DensePoseEstimator", "densepose_training"]
