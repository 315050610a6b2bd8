"""KTN's ROI heads (densepose.md 3, 3.7-3.9): ``DensePoseROIHeads`` with a MID, a KTM predictor, the keypoint
branch and KTN's losses; registered as KTN's names "DensePoseKTNHeads" (MID v1 with MID_ON) and
"DensePoseKTNv2Heads" (MID v2 with DECODER_ON).

* The branch exists with DENSEPOSE_ON and ROI_DENSEPOSE_HEAD.RCNN_HEAD_ON; with only KPT_ON it is keypoint
  pre-training: MID, pooler, head and a keypoint classifier (``KeypointDeconvPredictor``) trained with the
  keypoint loss on the foreground proposals with a visible keypoint inside.
* Training: the DensePose-selected ROIs (IoU > FG_IOU_THRESHOLD, with DensePose points) get U, V, I, S / M and,
  with KPT_ON, keypoint losses (``KTNLosses``).
* Test: keypoints decoded from K as Keypoint R-CNN's (``pred_keypoints``); with a body mask M, the
  foreground is softmax(M)[person] > FG_MASK_THRESHOLD, stored as the 2-channel ``pred_densepose_coarse_segm``
  [0, M_1 - M_0 - logit(threshold)], whose arg-max after the chart result's bilinear resize is exactly that test
  (resizing is linear; KTN also resizes M before its softmax).
* detectron2's standard keypoint head is never built (KTNv2 built it and never trained it).

``convert_official_state_dict`` maps KTN / KTNv2 checkpoint names (``mid_decoder.*``, the ``ScaleConv.*``
duplicate of ``ScaleConvs.*``, ``keypoint_predictor.*`` of keypoint pre-training, KTNv2's unused
``keypoint_head.*``) onto this module's.
"""
import math
from typing import Dict, List, Optional

import torch
from torch import Tensor, nn
from yacs.config import CfgNode

from ...structures import Instances
from ...utils.errors import ConfigError
from ..densepose.roi_heads import DensePoseROIHeads
from ..detection.keypoint_head import keypoint_rcnn_inference, select_with_visible_keypoints
from ..detection.roi_heads import ROI_HEADS_REGISTRY, Losses
from ..layers import ShapeSpec
from .ktm import PART_CHANNELS, KeypointDeconvPredictor
from .losses import KeypointLoss, KTNLosses
from .mid import MultiInstanceDecoderV2, mid_v1

PREFIX = "roi_heads."


def mask_foreground_logits(body_mask: Tensor, threshold: float) -> Tensor:
    """(R, 2, H, W) M logits -> (R, 2, H, W) [0, M_1 - M_0 - logit(threshold)]: arg-max > 0 exactly where
    softmax(M)[1] > threshold, before and after any bilinear resize."""
    margin = body_mask[:, 1:] - body_mask[:, :1] - math.log(threshold / (1 - threshold))
    return torch.cat([torch.zeros_like(margin), margin], dim=1)


class KTNROIHeads(DensePoseROIHeads):
    """KTN's DensePose ROI heads (module docstring); ``mid_version`` 1 or 2 picks the decoder."""

    mid_version = 1

    def __init__(self, cfg: CfgNode, input_shape: Dict[str, ShapeSpec]) -> None:
        head = cfg.MODEL.ROI_DENSEPOSE_HEAD
        self.keypoints_only = not (cfg.MODEL.DENSEPOSE_ON and head.RCNN_HEAD_ON)
        if head.KPT_ON and not cfg.MODEL.KEYPOINT_ON:
            raise ConfigError("MODEL.ROI_DENSEPOSE_HEAD.KPT_ON needs MODEL.KEYPOINT_ON: True (keypoint ground truth)")
        if cfg.MODEL.ROI_KEYPOINT_HEAD.RCNN_HEAD_ON:
            raise ConfigError("MODEL.ROI_KEYPOINT_HEAD.RCNN_HEAD_ON: posekit's KTN heads predict keypoints from the "
                              "DensePose head and never build detectron2's keypoint head; set it to False")
        super().__init__(cfg, input_shape)
        self.mask_threshold = head.FG_MASK_THRESHOLD
        if not 0 < self.mask_threshold < 1:
            raise ConfigError(f"MODEL.ROI_DENSEPOSE_HEAD.FG_MASK_THRESHOLD: expected a probability in (0, 1), got "
                              f"{self.mask_threshold}")
        if self.densepose_on and self.use_decoder:
            self.size_divisibility = getattr(self.decoder, "size_divisibility", 0)

    def branch_on(self, cfg: CfgNode) -> bool:
        """DENSEPOSE_ON and RCNN_HEAD_ON, or keypoint pre-training (KPT_ON alone)."""
        return not self.keypoints_only or cfg.MODEL.ROI_DENSEPOSE_HEAD.KPT_ON

    def build_decoder(self, cfg: CfgNode, input_shape: Dict[str, ShapeSpec]) -> Optional[nn.Module]:
        """MID v1 with MID_ON (KTN) or MID v2 with DECODER_ON (KTNv2); None without."""
        head = cfg.MODEL.ROI_DENSEPOSE_HEAD
        if self.mid_version == 1:
            return mid_v1(cfg, input_shape, self.in_features) if head.MID_ON else None
        return MultiInstanceDecoderV2.from_config(cfg, input_shape, self.in_features) if head.DECODER_ON else None

    def build_predictor(self, cfg: CfgNode, input_channels: int) -> nn.Module:
        """The configured DensePose predictor, or keypoint pre-training's classifier."""
        head = cfg.MODEL.ROI_DENSEPOSE_HEAD
        if self.keypoints_only:
            return KeypointDeconvPredictor(input_channels, cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS,
                                           head.DECONV_KERNEL, head.KPT_UP_SCALE)
        return super().build_predictor(cfg, input_channels)

    def build_losses(self, cfg: CfgNode):
        """KTNLosses (S with the predictor's part count), or the keypoint loss alone in pre-training."""
        if self.keypoints_only:
            return KeypointLoss.from_config(cfg)
        segm = getattr(self.densepose_predictor, "ann_index_lowres", None)
        channels = PART_CHANNELS if segm is not None and segm.out_channels == PART_CHANNELS \
            else cfg.MODEL.ROI_DENSEPOSE_HEAD.NUM_COARSE_SEGM_CHANNELS
        return KTNLosses.from_config(cfg, channels)

    def box_weights(self) -> Tensor:
        """(classes + 1 + box-regression rows, D): the box predictor's classifier and regressor weights."""
        return torch.cat([self.box_predictor.cls_score.weight, self.box_predictor.bbox_pred.weight])

    def predict(self, head_output: Tensor) -> Dict[str, Tensor]:
        """The predictor's outputs; KTM v2 also gets the box weights."""
        if getattr(self.densepose_predictor, "takes_box_weights", False):
            return self.densepose_predictor(head_output, self.box_weights())
        return self.densepose_predictor(head_output)

    def test_outputs(self, features: Dict[str, Tensor], detections: List[Instances]) -> Dict[str, Tensor]:
        """Outputs stored on the detections; keypoints decoded into ``pred_keypoints``, M turned into S."""
        outputs = super().test_outputs(features, detections)
        keypoints = outputs.pop("keypoints", None)
        if keypoints is not None:
            keypoint_rcnn_inference(keypoints, detections)
        if "body_mask" in outputs:
            outputs["coarse_segm"] = mask_foreground_logits(outputs["body_mask"], self.mask_threshold)
        return outputs

    def _densepose_losses(self, features: Dict[str, Tensor], foreground: List[Instances]) -> Losses:
        if not self.keypoints_only:
            return super()._densepose_losses(features, foreground)
        rois = [select_with_visible_keypoints(image) for image in foreground]
        outputs = self.densepose_outputs(features, [image.proposal_boxes for image in rois])
        return self.densepose_losses(rois, outputs["keypoints"])

    def convert_official_state_dict(self, state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """KTN / KTNv2 checkpoint names -> this module's (module docstring); other names pass unchanged."""
        own = set(self.state_dict())
        converted = {}
        for name, value in state_dict.items():
            local = name[len(PREFIX):] if name.startswith(PREFIX) else None
            if local is None:
                converted[name] = value
                continue
            local = _official_name(local, self.keypoints_only, "densepose_predictor.k_lowres.weight" in own)
            if local is not None:
                converted[PREFIX + local] = value
        return converted


def _official_name(local: str, keypoints_only: bool, has_k_lowres: bool) -> Optional[str]:
    """The posekit name of an official ``roi_heads.`` entry; None for entries posekit drops."""
    if local.startswith("keypoint_head.") or ".ScaleConv." in f".{local}":
        return None  # KTNv2's never-trained keypoint head; the duplicate registration of ScaleConvs
    if local.startswith("mid_decoder."):
        return "decoder." + local[len("mid_decoder."):]
    for pretraining in ("keypoint_predictor.predictor.0.", "densepose_predictor.predictor.0."):
        if local.startswith(pretraining):
            if keypoints_only:
                return "densepose_predictor.predictor.0." + local[len(pretraining):]
            # A keypoint-pretrained checkpoint initialising KTNv2's K classifier (R50-MIDv2-kpt).
            return "densepose_predictor.k_lowres." + local[len(pretraining):] if has_k_lowres else None
    return local


class KTNv2ROIHeads(KTNROIHeads):
    """KTNv2's heads: MID v2."""

    mid_version = 2


ROI_HEADS_REGISTRY.register("DensePoseKTNHeads", KTNROIHeads)
ROI_HEADS_REGISTRY.register("DensePoseKTNv2Heads", KTNv2ROIHeads)
