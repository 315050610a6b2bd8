"""The two-stage detector's entry points behind the generic tools: training set-up, validation, estimator."""
from ..family import FamilyTools, register_family_tools
from .estimator import DetectorEstimator
from .training import detector_training
from .validation import run_detector_validation

DETECTOR_TOOLS = register_family_tools(FamilyTools(
    name="detector", training=detector_training, validate=run_detector_validation, estimator=DetectorEstimator,
    video_demo=None, expected_results=lambda cfg: []))

__all__ = ["DETECTOR_TOOLS", "DetectorEstimator", "detector_training", "run_detector_validation"]
