"""``LCRNet``: the detector (ResNet-50-C4, RPN, C4 ROI heads) with LCR-Net's outputs, the decode of every
(RoI, class) pose proposal, the pose proposals integration, and the official checkpoint names (lcrnet.md 3).

Test-time output per image, in original-image pixels: ``pred_boxes`` (R, 4) the RoIs (rescaled, not clipped,
as the release), ``scores`` (R, K+1) class probabilities with background first, ``pred_pose2d`` (R, K, J, 2)
pixels and ``pred_pose3d`` (R, K, J, 3) metres, both float64. ``LCRNet.people`` turns them into people with
the PPI settings of MODEL.LCRNET.PPI (lcrnet.md 4).
"""
import functools
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch
from yacs.config import CfgNode

from ...config.lcrnet import GROUPING_BOXES
from ...data.lcrnet_mapper import PoseTransforms
from ...structures import Instances
from ...utils.errors import CheckpointError, ConfigError
from ..build import register_model
from ..detection.rcnn import GeneralizedRCNN, build_generalized_rcnn
from .codec import decode_poses, flip_poses, join_poses, split_poses
from .ppi import IOU_FUNCS, integrate_poses

StateDict = Dict[str, torch.Tensor]
Person = Dict[str, Any]

# Detectron.pytorch's module names in the release (lcrnet.md 3.9) -> posekit's, one rule per kind of entry.
_BLOCK = r"res(?P<stage>[2-5])\.(?P<block>\d+)"
OFFICIAL_NAME_RULES: Tuple[Tuple[re.Pattern, str], ...] = tuple((re.compile(pattern), target) for pattern, target in (
    (r"Conv_Body\.res1\.conv1\.weight", "backbone.stem.conv1.weight"),
    (r"Conv_Body\.res1\.bn1\.(?P<kind>weight|bias)", "backbone.stem.conv1.norm.{kind}"),
    (rf"(?P<part>Conv_Body|Box_Head)\.{_BLOCK}\.conv(?P<conv>[1-3])\.weight",
     "{part}.res{stage}.{block}.conv{conv}.weight"),
    (rf"(?P<part>Conv_Body|Box_Head)\.{_BLOCK}\.bn(?P<conv>[1-3])\.(?P<kind>weight|bias)",
     "{part}.res{stage}.{block}.conv{conv}.norm.{kind}"),
    (rf"(?P<part>Conv_Body|Box_Head)\.{_BLOCK}\.downsample\.0\.weight", "{part}.res{stage}.{block}.shortcut.weight"),
    (rf"(?P<part>Conv_Body|Box_Head)\.{_BLOCK}\.downsample\.1\.(?P<kind>weight|bias)",
     "{part}.res{stage}.{block}.shortcut.norm.{kind}"),
    (r"RPN\.RPN_conv\.(?P<kind>weight|bias)", "proposal_generator.rpn_head.conv.{kind}"),
    (r"RPN\.RPN_cls_score\.(?P<kind>weight|bias)", "proposal_generator.rpn_head.objectness_logits.{kind}"),
    (r"RPN\.RPN_bbox_pred\.(?P<kind>weight|bias)", "proposal_generator.rpn_head.anchor_deltas.{kind}"),
    (r"Pose_Outs\.(?P<layer>cls_score|pose_pred)\.(?P<kind>weight|bias)", "roi_heads.box_predictor.{layer}.{kind}"),
))
PART_PREFIXES = {"Conv_Body": "backbone", "Box_Head": "roi_heads"}
OFFICIAL_MARKER = "Conv_Body.res1.conv1.weight"
NAMES_SHOWN = 5


def official_name(name: str) -> Optional[str]:
    """posekit's name for a release checkpoint entry; None when no rule knows it."""
    for pattern, target in OFFICIAL_NAME_RULES:
        match = pattern.fullmatch(name)
        if match:
            groups = match.groupdict()
            if "part" in groups:
                groups["part"] = PART_PREFIXES[groups["part"]]
            return target.format(**groups)
    return None


def convert_official_names(state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    """A release (Detectron.pytorch) LCR-Net state dict under posekit's names; CheckpointError on unknown names."""
    renamed = {name: official_name(name) for name in state_dict}
    unknown = sorted(name for name, new in renamed.items() if new is None)
    if unknown:
        shown = ", ".join(unknown[:NAMES_SHOWN]) + (f", ... ({len(unknown)} in all)" if len(unknown) > NAMES_SHOWN
                                                    else "")
        raise CheckpointError(f"LCR-Net release checkpoint: {len(unknown)} entries have no posekit name: {shown} "
                              f"(expected Conv_Body.*, RPN.RPN_*, Box_Head.res5.*, Pose_Outs.*, lcrnet.md 3.9)")
    return {renamed[name]: value for name, value in state_dict.items()}


def scale_poses_2d(poses: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """(N, 5J) poses with their 2D multiplied by ``scale`` (sx, sy); 3D unchanged."""
    pose2d, pose3d = split_poses(poses)
    return join_poses(pose2d * scale.to(poses.dtype), pose3d)


# What the training mapper needs to move poses with their image (posekit.data.lcrnet_mapper).
POSE_TRANSFORMS = PoseTransforms(scale_2d=scale_poses_2d, flip=flip_poses)


@dataclass(frozen=True)
class PPISettings:
    """The keyword arguments of ``ppi.integrate_poses`` besides the proposals (MODEL.LCRNET.PPI + anchor file)."""

    kwargs: Dict[str, Any]

    @classmethod
    def from_config(cls, cfg: CfgNode, anchor_kwargs: Mapping[str, Any], num_anchors: int) -> "PPISettings":
        """MODEL.LCRNET.PPI; thresholds left negative (or IOU_FUNC "") take the anchor file's ppi_params."""
        ppi = cfg.MODEL.LCRNET.PPI
        if ppi.GROUPING_BOXES not in GROUPING_BOXES:
            raise ConfigError(f"MODEL.LCRNET.PPI.GROUPING_BOXES: expected one of {', '.join(GROUPING_BOXES)}, got "
                              f"'{ppi.GROUPING_BOXES}'")
        kwargs = dict(anchor_kwargs)
        overrides = {"th_pose3d": ppi.TH_POSE3D, "th_iou": ppi.TH_IOU, "min_mode_score": ppi.MIN_MODE_SCORE,
                     "th_persondetect": ppi.TH_PERSONDETECT}
        kwargs.update({name: float(value) for name, value in overrides.items() if value >= 0})
        if ppi.IOU_FUNC:
            if ppi.IOU_FUNC not in IOU_FUNCS:
                raise ConfigError(f"MODEL.LCRNET.PPI.IOU_FUNC: expected one of {', '.join(IOU_FUNCS)} (or '' for the "
                                  f"anchor file's), got '{ppi.IOU_FUNC}'")
            kwargs["iou_func"] = ppi.IOU_FUNC
        if ppi.RELEASE_K_PITFALL:
            kwargs["num_full_body_classes"] = num_anchors
        kwargs.update(score_threshold=None if ppi.SCORE_THRESHOLD < 0 else float(ppi.SCORE_THRESHOLD),
                      min_proposals=int(ppi.MIN_PROPOSALS), grouping_boxes=ppi.GROUPING_BOXES,
                      upper_body_weight=float(ppi.UPPER_BODY_WEIGHT))
        return cls(kwargs)


class LCRNet(GeneralizedRCNN):
    """Training: ``model(batch)`` -> {loss_rpn_cls, loss_rpn_loc, loss_cls, loss_pose}; test: per image
    {"instances": pose proposals (module docstring)}; ``people(instances)`` integrates them."""

    ppi: PPISettings

    @classmethod
    def from_config(cls, cfg: CfgNode) -> "LCRNet":
        """The detector of the MODEL section with LCRNetROIHeads and the PPI settings of MODEL.LCRNET.PPI."""
        if cfg.MODEL.ROI_HEADS.NAME != "LCRNetROIHeads":
            raise ConfigError(f"MODEL.ROI_HEADS.NAME: LCRNet needs 'LCRNetROIHeads', got "
                              f"'{cfg.MODEL.ROI_HEADS.NAME}'")
        model = super().from_config(cfg)
        anchors = model.roi_heads.anchors
        model.ppi = PPISettings.from_config(cfg, anchors.ppi_kwargs(), anchors.num_classes)
        return model

    @property
    def anchor_poses(self) -> torch.Tensor:
        """(K, 5J) anchor poses of the model's classes 1..K."""
        return self.roi_heads.box_predictor.anchor_poses

    def convert_official_state_dict(self, state_dict: StateDict) -> StateDict:
        """Release checkpoints (``Conv_Body.*`` ...) renamed by OFFICIAL_NAME_RULES; others as the detector."""
        if OFFICIAL_MARKER in state_dict:
            return convert_official_names(state_dict)
        return super().convert_official_state_dict(state_dict)

    def to_original_size(self, detections: Instances, item: Dict) -> Instances:
        """RoIs scaled to the item's original size (not clipped) and every class's pose decoded there (float64)."""
        input_height, input_width = item["image"].shape[-2:]
        height, width = item.get("height", input_height), item.get("width", input_width)
        scale = torch.tensor([width / input_width, height / input_height] * 2, dtype=torch.float64,
                             device=detections.pred_boxes.device)
        boxes = detections.pred_boxes.double() * scale
        pose2d, pose3d = decode_poses(boxes, detections.pose_deltas.double(), self.anchor_poses.double())
        return Instances((height, width), pred_boxes=boxes, scores=detections.scores, pred_pose2d=pose2d,
                         pred_pose3d=pose3d)

    def integrate(self, instances: Instances) -> Dict[str, Any]:
        """The pose proposals of one image integrated into people: ``ppi.integrate_poses``'s dict of NumPy arrays,
        scores (P,), pose2d (P, J, 2) pixels and pose3d (P, J, 3) metres, by decreasing score."""
        return integrate_poses(instances.scores.double().cpu().numpy(), instances.pred_boxes.cpu().numpy(),
                               instances.pred_pose2d.cpu().numpy(), instances.pred_pose3d.cpu().numpy(),
                               instances.image_size, **self.ppi.kwargs)

    def people(self, instances: Instances) -> List[Person]:
        """``integrate``'s people as dicts: {"score", "pose2d" (J, 2), "pose3d" (J, 3), "bbox" [x1, y1, x2, y2] the
        bounds of the 2D joints}."""
        found = self.integrate(instances)
        return [{"score": float(score), "pose2d": pose2d, "pose3d": pose3d,
                 "bbox": [float(v) for v in (*pose2d.min(axis=0), *pose2d.max(axis=0))]}
                for score, pose2d, pose3d in zip(found["scores"], found["pose2d"], found["pose3d"])]

register_model("LCRNet", functools.partial(build_generalized_rcnn, model_class=LCRNet))
