"""KTN / KTNv2 behind the generic tools: DensePose R-CNN's training set-up, validation, estimator (which adds each
person's "keypoints" when the model predicts them) and video demo, for configs of the "ktn" family."""
from ..densepose import DensePoseEstimator, densepose_training, densepose_video_demo, run_densepose_validation
from ..family import FamilyTools, register_family_tools

KTN_TOOLS = register_family_tools(FamilyTools(
    name="ktn", training=densepose_training, validate=run_densepose_validation, estimator=DensePoseEstimator,
    video_demo=densepose_video_demo))

__all__ = ["KTN_TOOLS"]
