"""``DensePoseAMAROIHeads``: KTN's DensePose ROI heads with AMANet's branch (densepose.md 4.1-4.7).

* No decoder: every ROI is pooled from P2..P5 (``MultiROIPooler``, P2 at HEATMAP_SIZE / 2: AMA v1 28, AMAv2 32),
  run through the AMA head and an AMA predictor (the box predictor's weights go to AMAv2's, not detached).
* Training: the DensePose-selected ROIs get ``AMALosses`` on the main and intermediate outputs (keypoint and IA
  terms included). With SEMSEG_ON the semantic branch (a Panoptic-FPN head on SEM_SEG_HEAD.IN_FEATURES, 2
  classes, ``dp_semseg_head``) adds ``loss_dp_sem_seg`` against the items' ``sem_seg`` person masks (padded as
  the images, bilinearly resized to its map, > 0.5), x SEMSEG_WEIGHTS; its output feeds nothing else, as released.
* ``convert_official_state_dict``: AMANet checkpoints' names (KTN's rules, and the AMA head's shared
  ``body_conv_fcn1..8`` into its ``body``); every other AMANet name is posekit's.
* Inference: KTN's: ``pred_keypoints`` from K, the foreground softmax(M)[1] > FG_MASK_THRESHOLD (0.3, AMANet's
  hard-coded value) as ``pred_densepose_coarse_segm``, so DensePose R-CNN's chart results and tools apply.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from yacs.config import CfgNode

from ...structures import Instances
from ...utils.errors import ConfigError, DataError
from ..densepose.losses import select_densepose_rois
from ..densepose.roi_heads import Decoder
from ..detection.roi_heads import ROI_HEADS_REGISTRY, Losses
from ..ktn.roi_heads import PREFIX, KTNROIHeads
from ..layers import ShapeSpec
from .head import DensePoseAMAHead
from .losses import AMALosses
from .pooler import MultiROIPooler, level_sizes
from .predictor import TaskTransformerAMAPredictorV2

SEMSEG_LOSS = "loss_dp_sem_seg"
SEMSEG_THRESHOLD = 0.5  # the release binarises the resized person mask at 0.5


class DensePoseAMAROIHeads(KTNROIHeads):
    """Standard FPN ROI heads with AMANet's DensePose branch (module docstring)."""

    def __init__(self, cfg: CfgNode, input_shape: Dict[str, ShapeSpec]) -> None:
        head = cfg.MODEL.ROI_DENSEPOSE_HEAD
        if cfg.MODEL.DENSEPOSE_ON and not head.RCNN_HEAD_ON:
            raise ConfigError("MODEL.ROI_DENSEPOSE_HEAD.RCNN_HEAD_ON: AMANet has no keypoint-only mode; set it True")
        super().__init__(cfg, input_shape)
        if not self.densepose_on:
            return
        if not isinstance(self.densepose_head, DensePoseAMAHead):
            raise ConfigError(f"MODEL.ROI_DENSEPOSE_HEAD.NAME: AMANet's ROI heads need 'DensePoseAMAHead', got "
                              f"'{head.NAME}'")
        self.densepose_pooler = MultiROIPooler(level_sizes(head.HEATMAP_SIZE // 2),
                                               [1.0 / input_shape[name].stride for name in self.in_features],
                                               head.POOLER_SAMPLING_RATIO, head.POOLER_TYPE)
        self.semseg_on = head.SEMSEG_ON
        if self.semseg_on:
            sem_seg = cfg.MODEL.SEM_SEG_HEAD
            self.dp_semseg_head = Decoder(input_shape, sem_seg.IN_FEATURES, sem_seg.CONVS_DIM,
                                          cfg.MODEL.ROI_HEADS.NUM_CLASSES + 1, sem_seg.COMMON_STRIDE, norm="")
            self.semseg_features = list(sem_seg.IN_FEATURES)
            self.semseg_stride = sem_seg.COMMON_STRIDE
            self.semseg_weight = head.SEMSEG_WEIGHTS

    def branch_on(self, cfg: CfgNode) -> bool:
        """MODEL.DENSEPOSE_ON (AMANet has no keypoint-only pre-training mode)."""
        return cfg.MODEL.DENSEPOSE_ON

    def build_decoder(self, cfg: CfgNode, input_shape: Dict[str, ShapeSpec]) -> Optional[nn.Module]:
        """None: AMANet pools every level itself."""
        if cfg.MODEL.ROI_DENSEPOSE_HEAD.DECODER_ON or cfg.MODEL.ROI_DENSEPOSE_HEAD.MID_ON:
            raise ConfigError("MODEL.ROI_DENSEPOSE_HEAD.DECODER_ON / MID_ON: AMANet pools every level itself; set "
                              "them False")
        return None

    def build_losses(self, cfg: CfgNode) -> AMALosses:
        """AMALosses; AMAv2's intermediate I terms keep full weight."""
        return AMALosses.from_config(cfg, isinstance(self.densepose_predictor, TaskTransformerAMAPredictorV2))

    def ama_outputs(self, features: Dict[str, Tensor],
                    boxes: Sequence[Tensor]) -> Tuple[Dict[str, Tensor], List[Dict[str, Tensor]]]:
        """(main, [shallow, deep]) predictor outputs for per-image boxes (input-image pixels), in box order."""
        pooled = self.densepose_pooler([features[name] for name in self.in_features], boxes)
        fused, paths = self.densepose_head(pooled)
        return self.densepose_predictor(fused, paths, self.box_weights())

    def densepose_outputs(self, features: Dict[str, Tensor], boxes: List[Tensor]) -> Dict[str, Tensor]:
        """The main outputs (test time)."""
        return self.ama_outputs(features, boxes)[0]

    def _densepose_losses(self, features: Dict[str, Tensor], foreground: List[Instances]) -> Losses:
        rois = select_densepose_rois(foreground, self.densepose_iou_threshold)
        main, intermediate = self.ama_outputs(features, [image.proposal_boxes for image in rois])
        return self.densepose_losses(rois, main, intermediate)

    def image_losses(self, features: Dict[str, Tensor], batched_inputs: Sequence[Dict]) -> Losses:
        """``loss_dp_sem_seg`` against the items' ``sem_seg`` masks (training with SEMSEG_ON; {} otherwise)."""
        if not (self.training and self.densepose_on and self.semseg_on):
            return {}
        logits = self.dp_semseg_head([features[name] for name in self.semseg_features])
        height, width = (side * self.semseg_stride for side in logits.shape[2:])
        masks = []
        for item in batched_inputs:
            if "sem_seg" not in item:
                raise DataError(f"{item.get('file_name', '?')}: training item without a 'sem_seg' person mask, "
                                f"which MODEL.ROI_DENSEPOSE_HEAD.SEMSEG_ON needs (AMANet's training set-up reads "
                                f"them from DENSEPOSE_DATA.SEMSEG_MASK_DIR)")
            mask = item["sem_seg"].to(logits.device)
            masks.append(F.pad(mask, (0, width - mask.shape[1], 0, height - mask.shape[0])))
        resized = F.interpolate(torch.stack(masks)[:, None], size=logits.shape[2:], mode="bilinear",
                                align_corners=False)[:, 0]
        return {SEMSEG_LOSS: F.cross_entropy(logits, (resized > SEMSEG_THRESHOLD).long()) * self.semseg_weight}

    def convert_official_state_dict(self, state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """KTN's conversion, then the AMA head's shared stack: ``densepose_head.body_conv_fcnK`` -> its ``body``."""
        official = f"{PREFIX}densepose_head.body_conv_fcn"
        return {name.replace(official, f"{PREFIX}densepose_head.body.body_conv_fcn", 1): value
                for name, value in super().convert_official_state_dict(state_dict).items()}


ROI_HEADS_REGISTRY.register("DensePoseAMAROIHeads", DensePoseAMAROIHeads)
