"""DensePose predictors (densepose.md 2.3, 2.6): parallel stride-2 transposed convs on the head output, then
bilinear x UP_SCALE interpolation, with detectron2 DensePose's (and KTN's) parameter names.

Outputs are a dict of (R, C, H_out, W_out) logits / regressions: "coarse_segm" (S, ``ann_index_lowres``),
"fine_segm" (I, ``index_uv_lowres``), "u" and "v" (``u_lowres``, ``v_lowres``) and, for the KTN papers'
"DensePose RCNN*" baseline, "body_mask" (M, ``m_lowres``) in place of S.
"""
from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn
from yacs.config import CfgNode

from ...utils.errors import ConfigError
from ...utils.registry import Registry
from .head import msra_fill

DENSEPOSE_PREDICTOR_REGISTRY: Registry = Registry("DensePose predictor")
BODY_MASK_CHANNELS = 2  # background / person
# Output name -> the transposed conv producing it.
OUTPUT_LAYERS = {"coarse_segm": "ann_index_lowres", "fine_segm": "index_uv_lowres", "u": "u_lowres", "v": "v_lowres",
                 "body_mask": "m_lowres"}


def _deconv(in_channels: int, out_channels: int, kernel_size: int) -> nn.ConvTranspose2d:
    # Stride 2 with padding kernel/2 - 1 doubles the size exactly for even kernels (detectron2's int() rounding).
    return nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride=2, padding=int(kernel_size / 2 - 1))


class DensePoseChartPredictor(nn.Module):
    """S (``coarse_segm_channels``, or none when 0), I, U, V (``num_patches`` + 1 each) and optionally M."""

    def __init__(self, input_channels: int, coarse_segm_channels: int, num_patches: int, kernel_size: int,
                 up_scale: int, body_mask: bool = False) -> None:
        super().__init__()
        if coarse_segm_channels:
            self.ann_index_lowres = _deconv(input_channels, coarse_segm_channels, kernel_size)
        self.index_uv_lowres = _deconv(input_channels, num_patches + 1, kernel_size)
        self.u_lowres = _deconv(input_channels, num_patches + 1, kernel_size)
        self.v_lowres = _deconv(input_channels, num_patches + 1, kernel_size)
        if body_mask:
            self.m_lowres = _deconv(input_channels, BODY_MASK_CHANNELS, kernel_size)
        self.outputs = {key: name for key, name in OUTPUT_LAYERS.items() if hasattr(self, name)}
        self.up_scale = up_scale
        msra_fill(self)

    def forward(self, head_output: torch.Tensor) -> Dict[str, torch.Tensor]:
        """(R, C_head, S, S) -> {output name: (R, C, 2 S x UP_SCALE, 2 S x UP_SCALE)}."""
        return {key: F.interpolate(getattr(self, name)(head_output), scale_factor=self.up_scale, mode="bilinear",
                                   align_corners=False)
                for key, name in self.outputs.items()}


def _chart_predictor(cfg: CfgNode, input_channels: int) -> DensePoseChartPredictor:
    head = cfg.MODEL.ROI_DENSEPOSE_HEAD
    for section in ("UV_CONFIDENCE", "SEGM_CONFIDENCE"):
        if head[section].ENABLED:
            raise ConfigError(f"MODEL.ROI_DENSEPOSE_HEAD.{section}.ENABLED: confidence estimation is not "
                              f"implemented in posekit; set it to False")
    return DensePoseChartPredictor(input_channels, head.NUM_COARSE_SEGM_CHANNELS, head.NUM_PATCHES,
                                   head.DECONV_KERNEL, head.UP_SCALE)


def _rcnn_star_predictor(cfg: CfgNode, input_channels: int) -> DensePoseChartPredictor:
    head = cfg.MODEL.ROI_DENSEPOSE_HEAD
    return DensePoseChartPredictor(input_channels, 0, head.NUM_PATCHES, head.DECONV_KERNEL, head.UP_SCALE,
                                   body_mask=True)


DENSEPOSE_PREDICTOR_REGISTRY.register("DensePoseChartPredictor", _chart_predictor)
# detectron2's default name; without confidences it is the chart predictor, parameter for parameter.
DENSEPOSE_PREDICTOR_REGISTRY.register("DensePoseChartWithConfidencePredictor", _chart_predictor)
DENSEPOSE_PREDICTOR_REGISTRY.register("DensePoseRCNNStarPredictor", _rcnn_star_predictor)


def build_densepose_predictor(cfg: CfgNode, input_channels: int) -> DensePoseChartPredictor:
    """The predictor named by MODEL.ROI_DENSEPOSE_HEAD.PREDICTOR_NAME."""
    name = cfg.MODEL.ROI_DENSEPOSE_HEAD.PREDICTOR_NAME
    return DENSEPOSE_PREDICTOR_REGISTRY.get(name, "MODEL.ROI_DENSEPOSE_HEAD.PREDICTOR_NAME")(cfg, input_channels)
