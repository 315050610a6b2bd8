"""Data: keypoint metadata, data sets, augmentation and training targets."""
from .build import build_dataset, build_test_dataset

__all__ = ["build_dataset", "build_test_dataset"]
