"""DensePose R-CNN's entry points behind the generic tools: training set-up, validation (box AP, GPS, GPSm,
IOU), estimator, video demo; tools/apply_net.py uses ``apply_net``."""
from ..family import FamilyTools, register_family_tools
from .estimator import DensePoseEstimator
from .training import densepose_training
from .validation import run_densepose_validation
from .video import densepose_video_demo


DENSEPOSE_TOOLS = register_family_tools(FamilyTools(
    name="densepose", training=densepose_training, validate=run_densepose_validation, estimator=DensePoseEstimator,
    video_demo=densepose_video_demo))

__all__ = ["DENSEPOSE_TOOLS", "DensePoseEstimator", "densepose_training", "densepose_video_demo",
           "run_densepose_validation"]
