"""AMANet's entry points behind the generic tools: DensePose R-CNN's estimator, validation and video demo (AMANet's
detections carry the same fields), and its training set-up with the semantic branch's person masks."""
from ..densepose import DensePoseEstimator, run_densepose_validation, densepose_video_demo
from ..family import FamilyTools, register_family_tools
from .training import amanet_training

AMANET_TOOLS = register_family_tools(FamilyTools(
    name="amanet", training=amanet_training, validate=run_densepose_validation, estimator=DensePoseEstimator,
    video_demo=densepose_video_demo))

__all__ = ["AMANET_TOOLS", "amanet_training"]
