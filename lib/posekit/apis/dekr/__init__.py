"""DEKR's entry points: the estimator, validation, the video demo and the training set-up behind the tools."""
from ..family import FamilyTools, register_family_tools
from .estimator import DekrEstimator
from .image_demo import dekr_image_demo
from .training import dekr_training
from .validation import run_validation
from .video import dekr_video_demo

DEKR_TOOLS = register_family_tools(FamilyTools(
    name="dekr", training=dekr_training, validate=run_validation, estimator=DekrEstimator,
    video_demo=dekr_video_demo, expected_results=lambda cfg: cfg.TEST.EXPECTED_RESULTS, image_demo=dekr_image_demo,
    skip_missing_key="DATASET.SKIP_MISSING_IMAGES"))

__all__ = ["DEKR_TOOLS", "DekrEstimator", "dekr_training", "run_validation", "dekr_image_demo", "dekr_video_demo"]
