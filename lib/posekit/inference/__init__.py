"""DEKR test-time inference: ``predict_image`` (image -> poses, scores), result records, rescore features."""
from .dekr import pose_results_to_coco, predict_image
from .rescore import rescore_features, rescore_poses

__all__ = ["predict_image", "pose_results_to_coco", "rescore_features", "rescore_poses"]
