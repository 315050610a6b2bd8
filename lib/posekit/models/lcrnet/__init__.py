"""LCR-Net / LCR-Net++ (docs/models/lcrnet.md): pose codec, anchor poses, pose proposals integration, and the
network: ``LCRNetROIHeads`` (registered as MODEL.ROI_HEADS.NAME "LCRNetROIHeads") and ``LCRNet`` (registered as
MODEL.META_ARCHITECTURE "LCRNet"), with its losses and the official checkpoint names."""
from .network import POSE_TRANSFORMS, LCRNet, PPISettings, convert_official_names
from .roi_heads import LCRNetOutputLayers, LCRNetROIHeads

__all__ = ["LCRNet", "LCRNetOutputLayers", "LCRNetROIHeads", "POSE_TRANSFORMS", "PPISettings",
           "convert_official_names"]
