"""DEKR test-time inference: ``predict_image(s)`` (images -> poses, scores) and rescore features."""
from .pipeline import predict_image, predict_images
from .rescore import rescore_features, rescore_poses

__all__ = ["predict_image", "predict_images", "rescore_features", "rescore_poses"]
