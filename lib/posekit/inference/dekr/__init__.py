"""DEKR test-time inference: ``predict_image(s)`` (images -> poses, scores), result records, rescore features."""
from .pipeline import pose_results_to_coco, predict_image, predict_images
from .rescore import rescore_features, rescore_poses

__all__ = ["predict_image", "predict_images", "pose_results_to_coco", "rescore_features", "rescore_poses"]
