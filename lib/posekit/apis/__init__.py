"""High-level entry points: the pose-estimator API and the logic behind tools/valid.py and tools/inference_demo.py."""
from .estimator import PoseEstimator

__all__ = ["PoseEstimator"]
