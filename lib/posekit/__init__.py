"""posekit: multi-person human pose (DEKR, DensePose R-CNN family, LCR-Net) on current PyTorch."""
__version__ = "0.1.0"
