"""AMANet's losses (densepose.md 4.5), built on DensePose R-CNN's targets and terms (densepose.md 2.4, 3.8).

For the main outputs and the shallow / deep intermediate ones (keys prefixed ``inter_1_`` / ``inter_2_``):
U, V, I (x POINT_REGRESSION_WEIGHTS / PART_WEIGHTS), the 15-part S (x INDEX_WEIGHTS) and the body mask M
(x BODY_MASK_WEIGHTS), as ``DensePoseLosses`` computes them. Intermediate terms are multiplied by INTER_WEIGHTS,
except, for AMAv2, the I terms (their I is the generated one). With IA_LOSS the main M also gets the
instance-aware terms (``ia_losses``); with a K output, KTN's keypoint loss on the same ROIs.
"""
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ...structures import Instances
from ..densepose.losses import DensePoseLosses, roi_part_labels
from ..ktn.ktm import PART_CHANNELS
from ..ktn.losses import KeypointLoss

Losses = Dict[str, Tensor]
IA_WEIGHT = 0.5  # the release's weight of loss_push
INTER_PREFIXES = ("inter_1_", "inter_2_")
FINE_SEGM_LOSS = "loss_densepose_I"


def ia_losses(body_mask: Tensor, labels: Tensor) -> Losses:
    """The instance-aware terms of (R, 2, Z, Z) M logits and (R, Z, Z) {0, 1} person labels.

    Per ROI with foreground, the M logits averaged over its foreground (and, when it has any, background) pixels
    are reference vectors labelled 1 (0); ``loss_push`` = 0.5 x their softmax cross-entropy; ``loss_pull`` is the
    release's constant zero. Without any foreground both are zeros tied to ``body_mask`` (the release returned a
    bare 0 that its caller could not unpack); tensors stay on ``body_mask``'s device.
    """
    zero = body_mask.sum() * 0
    foreground = labels > 0
    keep = foreground.flatten(1).any(dim=1)
    if not keep.any():
        return {"loss_push": zero, "loss_pull": zero}
    vectors, targets = [], []
    for label, mask in ((1, foreground[keep]), (0, ~foreground[keep])):
        counts = mask.flatten(1).sum(dim=1)
        sums = (body_mask[keep] * mask[:, None]).sum(dim=(2, 3))
        present = counts > 0  # an ROI entirely foreground has no background vector (the release divided by 0)
        vectors.append(sums[present] / counts[present, None])
        targets.append(torch.full((int(present.sum()),), label, dtype=torch.long, device=body_mask.device))
    push = F.cross_entropy(torch.cat(vectors), torch.cat(targets)) * IA_WEIGHT
    return {"loss_push": push, "loss_pull": zero}


def person_labels(rois: Sequence[Instances], size: int) -> Optional[Tuple[Tensor, Tensor]]:
    """(ROI indices, (n, Z, Z) {0, 1} person labels) of the concatenated ROIs with part masks; None if none has."""
    painted = roi_part_labels(torch.cat([image.gt_boxes for image in rois]),
                              torch.cat([image.proposal_boxes for image in rois]),
                              [points for image in rois for points in image.gt_densepose], (size, size))
    return None if painted is None else (painted[0], painted[1].clamp(max=1))


class AMALosses:
    """AMANet's terms of the main and intermediate outputs on the selected ROIs (module docstring)."""

    def __init__(self, dense: DensePoseLosses, inter_weight: float, exempt_inter_fine_segm: bool,
                 instance_aware: bool, keypoint_loss: Optional[KeypointLoss]) -> None:
        self.dense = dense
        self.inter_weight = inter_weight
        self.exempt_inter_fine_segm = exempt_inter_fine_segm
        self.instance_aware = instance_aware
        self.keypoint_loss = keypoint_loss

    @classmethod
    def from_config(cls, cfg, exempt_inter_fine_segm: bool) -> "AMALosses":
        """The weights of MODEL.ROI_DENSEPOSE_HEAD and, with KPT_ON, ROI_KEYPOINT_HEAD's keypoint loss."""
        head = cfg.MODEL.ROI_DENSEPOSE_HEAD
        dense = DensePoseLosses(head.POINT_REGRESSION_WEIGHTS, head.PART_WEIGHTS, head.INDEX_WEIGHTS, PART_CHANNELS,
                                head.BODY_MASK_WEIGHTS)
        return cls(dense, head.INTER_WEIGHTS, exempt_inter_fine_segm, head.IA_LOSS,
                   KeypointLoss.from_config(cfg) if head.KPT_ON else None)

    def __call__(self, rois: Sequence[Instances], main: Dict[str, Tensor],
                 intermediate: Sequence[Dict[str, Tensor]]) -> Losses:
        """Every term; the outputs are the predictor's on the concatenated ``proposal_boxes`` of ``rois``."""
        dense = {key: value for key, value in main.items() if key != "keypoints"}
        losses = self.dense(rois, dense)
        for prefix, outputs in zip(INTER_PREFIXES, intermediate):
            for name, value in self.dense(rois, outputs).items():
                exempt = self.exempt_inter_fine_segm and name == FINE_SEGM_LOSS
                losses[prefix + name] = value if exempt else value * self.inter_weight
        if self.instance_aware:
            losses.update(self._ia_terms(rois, main["body_mask"]))
        if self.keypoint_loss is not None and "keypoints" in main:
            losses.update(self.keypoint_loss(rois, main["keypoints"]))
        return losses

    @staticmethod
    def _ia_terms(rois: Sequence[Instances], body_mask: Tensor) -> Losses:
        selected = person_labels(rois, body_mask.shape[2]) if len(body_mask) else None
        if selected is None:
            zero = body_mask.sum() * 0
            return {"loss_push": zero, "loss_pull": zero}
        index, labels = selected
        return ia_losses(body_mask[index], labels)

