"""KTN's losses (densepose.md 3.8, 12): DensePose R-CNN's U, V, I, S (KTNv2's 15-part S) and M terms
(``DensePoseLosses``) plus ``loss_keypoint`` on the same DensePose-selected ROIs: Keypoint R-CNN's
cross-entropy over the K map's cells, divided by the number of valid keypoints (or, without
NORMALIZE_LOSS_BY_VISIBLE_KEYPOINTS, by images x ROIs per image x 0.25 x K), x ROI_KEYPOINT_HEAD.LOSS_WEIGHT."""
from typing import Dict, Optional, Sequence

from torch import Tensor
from yacs.config import CfgNode

from ...structures import Instances
from ..densepose.losses import DensePoseLosses, Losses
from ..detection.keypoint_head import keypoint_rcnn_loss

POSITIVE_FRACTION = 0.25  # KTN's fixed keypoint-loss normaliser fraction


class KeypointLoss:
    """``loss_keypoint`` of (R, K, Z, Z) logits on ROIs with ``gt_keypoints`` (module docstring)."""

    def __init__(self, weight: float, normalize_by_visible: bool, rois_per_image: int) -> None:
        self.weight = weight
        self.normalize_by_visible = normalize_by_visible
        self.rois_per_image = rois_per_image

    @classmethod
    def from_config(cls, cfg: CfgNode) -> "KeypointLoss":
        """MODEL.ROI_KEYPOINT_HEAD.LOSS_WEIGHT and NORMALIZE_LOSS_BY_VISIBLE_KEYPOINTS."""
        keypoint = cfg.MODEL.ROI_KEYPOINT_HEAD
        return cls(keypoint.LOSS_WEIGHT, keypoint.NORMALIZE_LOSS_BY_VISIBLE_KEYPOINTS,
                   cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE)

    def __call__(self, rois: Sequence[Instances], logits: Tensor) -> Losses:
        """{"loss_keypoint"}; zero (tied to ``logits``) when no ROI has a valid keypoint."""
        normalizer: Optional[float] = None
        if not self.normalize_by_visible:
            normalizer = len(rois) * self.rois_per_image * POSITIVE_FRACTION * logits.shape[1]
        return {"loss_keypoint": keypoint_rcnn_loss(logits, rois, normalizer) * self.weight}


class KTNLosses(DensePoseLosses):
    """DensePose terms of the outputs there are (S with ``segm_channels``, M) plus the keypoint term on K."""

    def __init__(self, point_weight: float, part_weight: float, segm_weight: float, segm_channels: int,
                 body_mask_weight: float, keypoint_loss: Optional[KeypointLoss]) -> None:
        super().__init__(point_weight, part_weight, segm_weight, segm_channels, body_mask_weight)
        self.keypoint_loss = keypoint_loss

    @classmethod
    def from_config(cls, cfg: CfgNode, segm_channels: int) -> "KTNLosses":
        """Weights of MODEL.ROI_DENSEPOSE_HEAD (+ BODY_MASK_WEIGHTS) and, with KPT_ON, the keypoint loss."""
        head = cfg.MODEL.ROI_DENSEPOSE_HEAD
        keypoint_loss = KeypointLoss.from_config(cfg) if head.KPT_ON else None
        return cls(head.POINT_REGRESSION_WEIGHTS, head.PART_WEIGHTS, head.INDEX_WEIGHTS, segm_channels,
                   head.BODY_MASK_WEIGHTS, keypoint_loss)

    def __call__(self, rois: Sequence[Instances], outputs: Dict[str, Tensor]) -> Losses:
        """DensePose losses of every output but K, and ``loss_keypoint`` of K when the predictor has it."""
        dense = {key: value for key, value in outputs.items() if key != "keypoints"}
        losses = super().__call__(rois, dense)
        if self.keypoint_loss is not None and "keypoints" in outputs:
            losses.update(self.keypoint_loss(rois, outputs["keypoints"]))
        return losses
