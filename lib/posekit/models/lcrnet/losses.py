"""LCR-Net's second-stage training targets and losses (lcrnet.md 2.3, 3.4, 3.7).

A sampled RoI matched to a person (IoU >= FG_THRESH) takes the class of the anchor pose nearest to that
person's pose normalised in the RoI's box (not the ground-truth box), so that a RoI framing only the upper
body picks an upper-body anchor; background RoIs take class 0. The pose target is the normalised pose minus
that anchor. Losses: softmax cross-entropy over the K+1 classes, mean over the sampled RoIs; smooth-L1 with
unit per-coordinate weights on the true class's 5J slot of the (already divided by 5) pose output, summed
and divided by the number of sampled RoIs (Detectron's Fast R-CNN losses; not the public trainer's x65).
"""
from typing import Dict, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ...structures import Instances
from ..detection.roi_heads import smooth_l1
from .codec import assign_classes, encode_targets


def lcrnet_targets(proposals: Sequence[Instances], person_class: int,
                   anchor_poses: Tensor) -> Tuple[Tensor, Tensor]:
    """Labels 0..K (R,) and float64 pose targets (R, 5J) (zero rows for background) of the sampled RoIs of every image.

    ``proposals`` carry ``proposal_boxes``, ``gt_classes`` (``person_class`` for foreground) and, for
    foreground RoIs, the matched person's ``gt_poses`` (5J, 2D in pixels).
    """
    labels, targets = [], []
    # In float64: the nearest anchor of a pose should not depend on float32 rounding of the RoI.
    anchors = anchor_poses.double()
    for image in proposals:
        image_labels = torch.zeros(len(image), dtype=torch.long, device=anchors.device)
        image_targets = anchors.new_zeros(len(image), anchors.shape[1])
        foreground = torch.nonzero(image.gt_classes == person_class).squeeze(1)
        if len(foreground):
            poses, boxes = image.gt_poses[foreground].double(), image.proposal_boxes[foreground].double()
            classes = assign_classes(poses, boxes, anchors)
            image_labels[foreground] = classes
            image_targets[foreground] = encode_targets(poses, boxes, classes, anchors)
        labels.append(image_labels)
        targets.append(image_targets)
    return torch.cat(labels), torch.cat(targets)


def lcrnet_losses(cls_logits: Tensor, pose_deltas: Tensor, labels: Tensor, targets: Tensor, beta: float,
                  cls_weight: float = 1.0, pose_weight: float = 1.0) -> Dict[str, Tensor]:
    """{"loss_cls", "loss_pose"} of (R, K+1) logits and (R, 5J(K+1)) pose outputs (divided by the regression
    weight already) against labels (R,) 0..K and targets (R, 5J) (module docstring)."""
    rois = labels.numel()
    if rois == 0:  # still tied to both outputs, so every process uses the same parameters
        zero = cls_logits.sum() * 0 + pose_deltas.sum() * 0
        return {"loss_cls": zero, "loss_pose": zero}
    loss_cls = F.cross_entropy(cls_logits, labels, reduction="mean")
    foreground = torch.nonzero(labels > 0).squeeze(1)
    per_class = pose_deltas.view(rois, cls_logits.shape[1], -1)
    predicted = per_class[foreground, labels[foreground]]
    loss_pose = smooth_l1(predicted, targets[foreground].to(predicted.dtype), beta) / rois
    return {"loss_cls": loss_cls * cls_weight, "loss_pose": loss_pose * pose_weight}
