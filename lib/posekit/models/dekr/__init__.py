"""DEKR: HRNet backbone with a heatmap head and adaptive-convolution offset heads, plus the rescore net."""
from .adaptive_conv import AdaptBlock, affine_offsets
from .build import build_dekr, build_rescore_net
from .model import DEKR
from .rescore import RescoreNet

__all__ = ["AdaptBlock", "DEKR", "RescoreNet", "affine_offsets", "build_dekr", "build_rescore_net"]
