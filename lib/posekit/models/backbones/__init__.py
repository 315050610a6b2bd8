"""Backbones: HRNet (DEKR, HRFPN), detectron2-style ResNet / ResNeXt with FPN or C4; importing the package
registers the detector backbones under detectron2's builder names."""
from . import fpn, hrfpn, resnet  # noqa: F401 (registration)
from .build import Backbone, build_backbone, register_backbone

__all__ = ["Backbone", "build_backbone", "register_backbone"]
