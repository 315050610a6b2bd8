"""LCR-Net's second stage (lcrnet.md 3.4-3.7): the detector's C4 ROI heads (ROIAlign 14x14 on res4, res5,
average pooling) ending in an anchor-pose classifier and a per-class pose regressor instead of box outputs.

``cls_score`` gives K+1 logits with background FIRST (class 0), as the release; ``pose_pred`` gives
5J(K+1) numbers, slot k at [5Jk, 5J(k+1)), divided by POSE_REG_WEIGHT (5) in forward. The detector's sampler
picks the RoIs (person foreground at FG_THRESH, 25 % of 512); ``losses.py`` labels them by nearest anchor.
At test time every RoI is kept (no NMS, no score threshold): the pose proposals integration does the rest.
"""
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from yacs.config import CfgNode

from ...structures import Instances
from ...utils.errors import ConfigError
from ..detection.roi_heads import ROI_HEADS_REGISTRY, Res5ROIHeads
from ..layers import ShapeSpec
from .anchors import load_anchors
from .losses import lcrnet_losses, lcrnet_targets

Predictions = Tuple[Tensor, Tensor]


class LCRNetOutputLayers(nn.Module):
    """``cls_score`` (K+1) and ``pose_pred`` (5J(K+1), output divided by ``pose_reg_weight``); losses, inference."""

    def __init__(self, input_size: int, anchor_poses: Tensor, pose_reg_weight: float = 5.0, beta: float = 1.0,
                 cls_weight: float = 1.0, pose_weight: float = 1.0, person_class: int = 0) -> None:
        super().__init__()
        num_anchors, width = anchor_poses.shape
        self.cls_score = nn.Linear(input_size, num_anchors + 1)
        self.pose_pred = nn.Linear(input_size, width * (num_anchors + 1))
        # The release's initialisation (lcrnet.md 3.6).
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.pose_pred.weight, std=0.001)
        for layer in (self.cls_score, self.pose_pred):
            nn.init.zeros_(layer.bias)
        # Not in checkpoints (the official ones have none): the anchors come with the config's file.
        self.register_buffer("anchor_poses", anchor_poses.clone(), persistent=False)
        self.pose_reg_weight = pose_reg_weight
        self.beta, self.cls_weight, self.pose_weight = beta, cls_weight, pose_weight
        self.person_class = person_class

    @property
    def num_anchors(self) -> int:
        """K, the anchor-pose classes (background not counted)."""
        return self.anchor_poses.shape[0]

    def forward(self, features: Tensor) -> Predictions:
        """(R, D) RoI features -> class logits (R, K+1) and pose deltas (R, 5J(K+1)) divided by the weight."""
        return self.cls_score(features), self.pose_pred(features) / self.pose_reg_weight

    def losses(self, predictions: Predictions, proposals: Sequence[Instances]) -> Dict[str, Tensor]:
        """{"loss_cls", "loss_pose"} of the sampled RoIs (losses.py)."""
        labels, targets = lcrnet_targets(proposals, self.person_class, self.anchor_poses)
        return lcrnet_losses(*predictions, labels, targets, self.beta, self.cls_weight, self.pose_weight)

    @staticmethod
    def inference(predictions: Predictions, proposals: Sequence[Instances]) -> List[Instances]:
        """Per image, every RoI: ``pred_boxes`` (R, 4), class probabilities ``scores`` (R, K+1), background
        first, and ``pose_deltas`` (R, 5J(K+1))."""
        logits, deltas = predictions
        counts = [len(p) for p in proposals]
        return [Instances(p.image_size, pred_boxes=p.proposal_boxes, scores=s, pose_deltas=d)
                for p, s, d in zip(proposals, F.softmax(logits, dim=-1).split(counts), deltas.split(counts))]


class LCRNetROIHeads(Res5ROIHeads):
    """The detector's C4 ROI heads with LCR-Net's outputs (module docstring)."""

    def __init__(self, cfg: CfgNode, input_shape: Dict[str, ShapeSpec]) -> None:
        super().__init__(cfg, input_shape)
        if self.num_classes != 1:
            raise ConfigError(f"MODEL.ROI_HEADS.NUM_CLASSES: LCR-Net's detector has one class (person), got "
                              f"{self.num_classes}; the anchor poses come from MODEL.LCRNET.ANCHORS_FILE")
        lcr = cfg.MODEL.LCRNET
        self.anchors = load_anchors(lcr.ANCHORS_FILE)
        check_anchor_shape(self.anchors.poses.shape, lcr.NUM_ANCHOR_POSES, lcr.NUM_JOINTS, lcr.ANCHORS_FILE)
        # Replaces the detector's box outputs built by Res5ROIHeads: LCR-Net has no box regression.
        self.box_predictor = LCRNetOutputLayers(
            self.box_predictor.cls_score.in_features, torch.as_tensor(self.anchors.poses, dtype=torch.float32),
            lcr.POSE_REG_WEIGHT, lcr.POSE_SMOOTH_L1_BETA, lcr.CLS_LOSS_WEIGHT, lcr.POSE_LOSS_WEIGHT)


def check_anchor_shape(shape: Sequence[int], num_anchors: int, num_joints: int, path: str) -> None:
    """ConfigError unless the anchor file's (K, 5J) matches MODEL.LCRNET.NUM_ANCHOR_POSES and NUM_JOINTS."""
    if tuple(shape) != (num_anchors, 5 * num_joints):
        raise ConfigError(f"{path}: anchor poses of shape {tuple(shape)} (K, 5J), but MODEL.LCRNET says "
                          f"NUM_ANCHOR_POSES {num_anchors} and NUM_JOINTS {num_joints} ({num_anchors}, "
                          f"{5 * num_joints}); set them to the file's K and J")


ROI_HEADS_REGISTRY.register("LCRNetROIHeads", LCRNetROIHeads)
