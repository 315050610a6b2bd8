"""``DensePoseROIHeads``: the FPN box heads plus the DensePose branch (densepose.md 2.1-2.3, 2.5).

The branch pools each detection's features (from P2..P5 by box size, or, with ``DECODER_ON``, from the single
stride-4 map of a Panoptic-FPN decoder), runs the head and the predictor, and at test time stores the
predictor's outputs on the detections as ``pred_densepose_<output>`` fields (``coarse_segm``, ``fine_segm``,
``u``, ``v``; ``body_mask`` for the RCNN* predictor). Module names follow detectron2 DensePose (``decoder``,
``densepose_head``, ``densepose_predictor``), so its checkpoints' ``roi_heads.*`` names apply unchanged.
"""
import math
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn
from yacs.config import CfgNode

from ...structures import Instances
from ...utils.errors import ConfigError
from ..detection.poolers import ROIPooler
from ..detection.roi_heads import ROI_HEADS_REGISTRY, Losses, StandardROIHeads
from ..layers import Conv2d, ShapeSpec, c2_msra_fill, get_norm
from .head import build_densepose_head
from .losses import DensePoseLosses, select_densepose_rois
from .predictor import build_densepose_predictor

FIELD_PREFIX = "pred_densepose_"


class Decoder(nn.Module):
    """Panoptic-FPN semantic branch: per level max(1, log2(stride / common stride)) blocks of [3x3 conv + ReLU,
    bilinear x2 unless already at the common stride], summed, then a 1x1 conv (child names = the level names)."""

    def __init__(self, input_shape: Dict[str, ShapeSpec], in_features: List[str], conv_dims: int, num_classes: int,
                 common_stride: int, norm: str) -> None:
        super().__init__()
        if norm not in ("", "GN"):
            raise ConfigError(f"MODEL.ROI_DENSEPOSE_HEAD.DECODER_NORM: expected '' or 'GN', got '{norm}'")
        self.in_features = list(in_features)
        for name in self.in_features:
            stride = input_shape[name].stride
            blocks = []
            for k in range(max(1, int(math.log2(stride) - math.log2(common_stride)))):
                blocks.append(Conv2d(input_shape[name].channels if k == 0 else conv_dims, conv_dims, 3, padding=1,
                                     bias=not norm, norm=get_norm(norm, conv_dims, "MODEL.ROI_DENSEPOSE_HEAD.DECODER_NORM"),
                                     activation=F.relu))
                if stride != common_stride:
                    blocks.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            self.add_module(name, nn.Sequential(*blocks))
        self.predictor = nn.Conv2d(conv_dims, num_classes, 1)
        for module in self.modules():
            # detectron2's c2_msra_fill on the convs only (zero biases); GroupNorm keeps its unit scale.
            if isinstance(module, nn.Conv2d):
                c2_msra_fill(module)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    @classmethod
    def from_config(cls, cfg: CfgNode, input_shape: Dict[str, ShapeSpec], in_features: List[str]) -> "Decoder":
        """The decoder of MODEL.ROI_DENSEPOSE_HEAD.DECODER_*."""
        head = cfg.MODEL.ROI_DENSEPOSE_HEAD
        return cls(input_shape, in_features, head.DECODER_CONV_DIMS, head.DECODER_NUM_CLASSES,
                   head.DECODER_COMMON_STRIDE, head.DECODER_NORM)

    def forward(self, features: List[torch.Tensor]) -> torch.Tensor:
        """Maps of ``in_features`` (finest first) -> one (N, num_classes, H/common, W/common) map."""
        merged = sum(getattr(self, name)(x) for name, x in zip(self.in_features, features))
        return self.predictor(merged)


class DensePoseROIHeads(StandardROIHeads):
    """Standard FPN ROI heads with the DensePose branch on the foreground proposals / detections.

    Variants (KTN, AMANet) override the hooks ``branch_on``, ``build_decoder``, ``build_predictor``,
    ``build_losses``, ``predict`` and ``test_outputs``."""

    def __init__(self, cfg: CfgNode, input_shape: Dict[str, ShapeSpec]) -> None:
        super().__init__(cfg, input_shape)
        self.densepose_on = self.branch_on(cfg)
        if not self.densepose_on:
            return
        head = cfg.MODEL.ROI_DENSEPOSE_HEAD
        decoder = self.build_decoder(cfg, input_shape)
        self.use_decoder = decoder is not None
        # Without the decoder every level is pooled as for the box head; with it, its single stride-4 map.
        pooled = self.in_features[:1] if self.use_decoder else self.in_features
        if self.use_decoder:
            self.decoder = decoder
            channels = decoder.predictor.out_channels
        else:
            channels = input_shape[self.in_features[0]].channels
        self.densepose_pooler = ROIPooler(head.POOLER_RESOLUTION, [1.0 / input_shape[name].stride for name in pooled],
                                          head.POOLER_SAMPLING_RATIO, head.POOLER_TYPE)
        self.densepose_head = build_densepose_head(cfg, channels)
        self.densepose_predictor = self.build_predictor(cfg, self.densepose_head.n_out_channels)
        self.densepose_iou_threshold = head.FG_IOU_THRESHOLD
        self.densepose_losses = self.build_losses(cfg)

    def branch_on(self, cfg: CfgNode) -> bool:
        """Whether the branch exists (MODEL.DENSEPOSE_ON)."""
        return cfg.MODEL.DENSEPOSE_ON

    def build_decoder(self, cfg: CfgNode, input_shape: Dict[str, ShapeSpec]) -> Optional[nn.Module]:
        """The Panoptic-FPN decoder with DECODER_ON, else None (its ``predictor`` conv gives the output width)."""
        return Decoder.from_config(cfg, input_shape, self.in_features) if cfg.MODEL.ROI_DENSEPOSE_HEAD.DECODER_ON else None

    def build_predictor(self, cfg: CfgNode, input_channels: int) -> nn.Module:
        """The predictor of MODEL.ROI_DENSEPOSE_HEAD.PREDICTOR_NAME."""
        return build_densepose_predictor(cfg, input_channels)

    def build_losses(self, cfg: CfgNode) -> Callable[[List[Instances], Dict[str, torch.Tensor]], Losses]:
        """The losses of the predictor outputs on the selected ROIs."""
        return DensePoseLosses.from_config(cfg)

    def densepose_outputs(self, features: Dict[str, torch.Tensor],
                          boxes: List[torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Predictor outputs {name: (R, C, H, W)} for per-image boxes (input-image pixels), in box order."""
        maps = [features[name] for name in self.in_features]
        if self.use_decoder:
            maps = [self.decoder(maps)]
        return self.predict(self.densepose_head(self.densepose_pooler(maps, boxes)))

    def predict(self, head_output: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The predictor's outputs on the head's (R, C, S, S) output."""
        return self.densepose_predictor(head_output)

    def forward_branches(self, features: Dict[str, torch.Tensor], instances: List[Instances]) -> Losses:
        """Training: the DensePose losses of the foreground proposals (densepose.md 2.4). Test:
        ``pred_densepose_*`` fields on each image's detections."""
        if not self.densepose_on:
            return {}
        if self.training:
            return self._densepose_losses(features, instances)
        outputs = self.test_outputs(features, instances)
        counts = [len(image) for image in instances]
        for key, value in outputs.items():
            for image, part in zip(instances, value.split(counts)):
                image.set(FIELD_PREFIX + key, part)
        return {}

    def test_outputs(self, features: Dict[str, torch.Tensor], detections: List[Instances]) -> Dict[str, torch.Tensor]:
        """The outputs stored on the detections as ``pred_densepose_<name>`` fields."""
        return self.densepose_outputs(features, [image.pred_boxes for image in detections])

    def _densepose_losses(self, features: Dict[str, torch.Tensor], foreground: List[Instances]) -> Losses:
        """The four DensePose losses of the selected ROIs: zero-valued, still tied to every DensePose parameter,
        when no ROI qualifies, so that DistributedDataParallel sees the same parameters used in every step."""
        rois = select_densepose_rois(foreground, self.densepose_iou_threshold)
        outputs = self.densepose_outputs(features, [image.proposal_boxes for image in rois])
        return self.densepose_losses(rois, outputs)


ROI_HEADS_REGISTRY.register("DensePoseROIHeads", DensePoseROIHeads)
