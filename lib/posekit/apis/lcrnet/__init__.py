"""LCR-Net's entry points behind the generic tools: training set-up, validation (3D pose metrics), estimator,
video and image demos (tools/inference_demo.py); tools/lcrnet_demo.py uses ``lcrnet_demo`` (an image, a folder
or a video)."""
from ..family import FamilyTools, register_family_tools
from .demo import lcrnet_demo, lcrnet_image_demo, lcrnet_video_demo
from .estimator import LCRNetEstimator
from .training import lcrnet_training
from .validation import evaluate_model, run_lcrnet_validation

LCRNET_TOOLS = register_family_tools(FamilyTools(
    name="lcrnet", training=lcrnet_training, validate=run_lcrnet_validation, estimator=LCRNetEstimator,
    video_demo=lcrnet_video_demo, expected_results=lambda cfg: cfg.TEST.EXPECTED_RESULTS,
    image_demo=lcrnet_image_demo))

__all__ = ["LCRNET_TOOLS", "LCRNetEstimator", "evaluate_model", "lcrnet_demo", "lcrnet_image_demo", "lcrnet_training",
           "lcrnet_video_demo", "run_lcrnet_validation"]
