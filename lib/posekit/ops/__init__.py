"""posekit's compiled vision ops, drop-in for the torchvision.ops functions of the same names."""
from posekit.ops.deform_conv import DeformConv2d, deform_conv2d
from posekit.ops.nms import batched_nms, nms, oks_nms
from posekit.ops.roi_align import RoIAlign, roi_align

__all__ = ["DeformConv2d", "RoIAlign", "batched_nms", "deform_conv2d", "nms", "oks_nms", "roi_align"]
