"""Data: keypoint metadata, data sets, augmentation and training targets."""
from . import lcrnet_annotations  # noqa: F401  (registers the LCR-Net data set names)
from .build import build_dataset, build_test_dataset

__all__ = ["build_dataset", "build_test_dataset"]
