"""The two-stage detector shared by the detector families (DensePose R-CNN and its variants, LCR-Net):
anchors, box coding, matching and sampling, RPN, ROI pooling and heads, and ``GeneralizedRCNN``, which
importing this package registers as a model."""
from .rcnn import GeneralizedRCNN
from .roi_heads import ROI_HEADS_REGISTRY, ROIHeads, Res5ROIHeads, StandardROIHeads, build_roi_heads
from .rpn import RPN

__all__ = ["GeneralizedRCNN", "ROI_HEADS_REGISTRY", "ROIHeads", "RPN", "Res5ROIHeads", "StandardROIHeads",
           "build_roi_heads"]
