"""``build_backbone(cfg)``: the detector backbone ``MODEL.BACKBONE.NAME`` names, from a registry.

Builders are registered under detectron2's names ("build_resnet_backbone", "build_resnet_fpn_backbone",
"build_hrfpn_backbone") by the modules of this folder.
"""
from typing import Callable, Dict

import torch
from torch import nn
from yacs.config import CfgNode

from ...utils.registry import Registry
from ..layers import ShapeSpec

BackboneBuilder = Callable[[CfgNode], nn.Module]
_BACKBONES: Registry[BackboneBuilder] = Registry("backbone")


class Backbone(nn.Module):
    """What the detector expects of a backbone: named feature maps of known channels and strides.

    ``size_divisibility``: images are padded to a multiple of it before ``forward`` (0: no constraint).
    """

    size_divisibility = 0

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Feature maps by name for normalised BGR images of shape (N, 3, H, W)."""
        raise NotImplementedError

    def output_shape(self) -> Dict[str, ShapeSpec]:
        """Channels and stride of each map ``forward`` returns, in the same order."""
        raise NotImplementedError


def register_backbone(name: str, builder: BackboneBuilder) -> BackboneBuilder:
    """Make ``builder(cfg)`` the backbone of configs whose MODEL.BACKBONE.NAME is ``name``; returns it."""
    return _BACKBONES.register(name, builder)


def build_backbone(cfg: CfgNode) -> nn.Module:
    """The backbone named by ``cfg.MODEL.BACKBONE.NAME``, built from ``cfg``."""
    return _BACKBONES.get(cfg.MODEL.BACKBONE.NAME, "MODEL.BACKBONE.NAME")(cfg)
