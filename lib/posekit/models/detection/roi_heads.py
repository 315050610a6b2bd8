"""Second stage of the two-stage detector (densepose.md 1.3, lcrnet.md 3.4-3.5), with detectron2's semantics.

``ROIHeads`` matches proposals to the ground truth (ground-truth boxes appended) and samples the ROIs;
``StandardROIHeads`` pools FPN levels for a conv/FC box head, ``Res5ROIHeads`` runs ResNet's res5 on
res4 ROIs (C4). Both end in ``FastRCNNOutputLayers``. DensePose and LCR-Net heads subclass them and add
their branches through ``forward_branches`` (foreground proposals in training, detections at test).
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from yacs.config import CfgNode

from ...ops import batched_nms
from ...structures import Instances
from ...structures.boxes import clip_boxes, pairwise_iou
from ...utils.errors import ConfigError
from ...utils.registry import Registry
from ..backbones.resnet import make_res5_stage
from ..layers import ShapeSpec
from .box_coder import Box2BoxTransform
from .matcher import Matcher
from .poolers import ROIPooler
from .sampler import subsample_labels

Losses = Dict[str, torch.Tensor]


def smooth_l1(input: torch.Tensor, target: torch.Tensor, beta: float) -> torch.Tensor:
    """Summed smooth-L1 with detectron2's convention that beta < 1e-5 means plain L1."""
    if beta < 1e-5:
        return (input - target).abs().sum()
    return F.smooth_l1_loss(input, target, beta=beta, reduction="sum")


class FastRCNNConvFCHead(nn.Module):
    """``NUM_CONV`` 3x3 convs then ``NUM_FC`` fully connected layers with ReLU (names conv1.., fc1..)."""

    def __init__(self, input_shape: ShapeSpec, pooler_resolution: int, num_conv: int, conv_dim: int,
                 num_fc: int, fc_dim: int) -> None:
        super().__init__()
        channels = input_shape.channels
        for k in range(num_conv):
            conv = nn.Conv2d(channels, conv_dim, 3, padding=1)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
            self.add_module(f"conv{k + 1}", conv)
            channels = conv_dim
        features = channels * pooler_resolution ** 2
        for k in range(num_fc):
            fc = nn.Linear(features, fc_dim)
            # detectron2's c2_xavier_fill: kaiming-uniform with a = 1, zero bias.
            nn.init.kaiming_uniform_(fc.weight, a=1)
            nn.init.zeros_(fc.bias)
            self.add_module(f"fc{k + 1}", fc)
            features = fc_dim
        self.num_conv, self.num_fc = num_conv, num_fc
        self.output_size = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(R, C, S, S) pooled features -> (R, output_size)."""
        for k in range(self.num_conv):
            x = F.relu(getattr(self, f"conv{k + 1}")(x))
        if self.num_fc:
            x = x.flatten(1)
        for k in range(self.num_fc):
            x = F.relu(getattr(self, f"fc{k + 1}")(x))
        return x


class FastRCNNOutputLayers(nn.Module):
    """Class scores (``num_classes`` + background, last) and class-specific box deltas; losses and inference."""

    def __init__(self, input_size: int, num_classes: int, box_transform: Box2BoxTransform, smooth_l1_beta: float,
                 box_loss_weight: float, class_agnostic: bool, score_threshold: float, nms_threshold: float,
                 detections_per_image: int, legacy_plus_one: bool) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.cls_score = nn.Linear(input_size, num_classes + 1)
        self.bbox_pred = nn.Linear(input_size, 4 * (1 if class_agnostic else num_classes))
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        for layer in (self.cls_score, self.bbox_pred):
            nn.init.zeros_(layer.bias)
        self.box_transform = box_transform
        self.smooth_l1_beta = smooth_l1_beta
        self.box_loss_weight = box_loss_weight
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.detections_per_image = detections_per_image
        self.legacy_plus_one = legacy_plus_one

    def forward(self, features: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(R, D) ROI features -> class logits (R, K+1) and box deltas (R, 4K or 4)."""
        return self.cls_score(features), self.bbox_pred(features)

    def losses(self, predictions: Tuple[torch.Tensor, torch.Tensor], proposals: Sequence[Instances]) -> Losses:
        """Softmax cross-entropy over the sampled ROIs and smooth-L1 on the foreground ones' true-class deltas,
        both divided by the number of sampled ROIs (detectron2)."""
        logits, deltas = predictions
        gt_classes = torch.cat([p.gt_classes for p in proposals])
        proposal_boxes = torch.cat([p.proposal_boxes for p in proposals])
        gt_boxes = torch.cat([p.gt_boxes for p in proposals])
        loss_cls = F.cross_entropy(logits, gt_classes, reduction="mean") if len(gt_classes) else logits.sum() * 0
        foreground = torch.nonzero((gt_classes >= 0) & (gt_classes < self.num_classes)).squeeze(1)
        if deltas.shape[1] == 4:  # class-agnostic
            predicted = deltas[foreground]
        else:
            predicted = deltas.view(-1, self.num_classes, 4)[foreground, gt_classes[foreground]]
        target = self.box_transform.get_deltas(proposal_boxes[foreground], gt_boxes[foreground])
        loss_box = smooth_l1(predicted, target, self.smooth_l1_beta) / max(gt_classes.numel(), 1)
        return {"loss_cls": loss_cls, "loss_box_reg": loss_box * self.box_loss_weight}

    def inference(self, predictions: Tuple[torch.Tensor, torch.Tensor],
                  proposals: Sequence[Instances]) -> List[Instances]:
        """Per image: class-specific boxes scoring above the threshold, per-class NMS, the best N detections."""
        logits, deltas = predictions
        counts = [len(p) for p in proposals]
        scores = F.softmax(logits, dim=-1).split(counts)
        boxes = self._decode(deltas, torch.cat([p.proposal_boxes for p in proposals])).split(counts)
        return [self._image_detections(s, b, p.image_size) for s, b, p in zip(scores, boxes, proposals)]

    def _decode(self, deltas: torch.Tensor, proposal_boxes: torch.Tensor) -> torch.Tensor:
        """(R, K, 4) boxes, one per foreground class."""
        per_class = deltas.shape[1] // 4
        boxes = self.box_transform.apply_deltas(deltas.reshape(-1, 4),
                                                proposal_boxes.repeat_interleave(per_class, dim=0))
        return boxes.view(-1, per_class, 4).expand(-1, self.num_classes, 4)

    def _image_detections(self, scores: torch.Tensor, boxes: torch.Tensor,
                          image_size: Tuple[int, int]) -> Instances:
        boxes = clip_boxes(boxes.reshape(-1, 4), image_size, self.legacy_plus_one).view(-1, self.num_classes, 4)
        scores = scores[:, :-1]  # background is the last column
        keep = scores > self.score_threshold
        rows, classes = keep.nonzero(as_tuple=True)
        boxes, scores = boxes[rows, classes], scores[keep]
        kept = batched_nms(boxes, scores, classes, self.nms_threshold)[:self.detections_per_image]
        return Instances(image_size, pred_boxes=boxes[kept], scores=scores[kept], pred_classes=classes[kept])


def _pooler(cfg_head: CfgNode, feature_shapes: Sequence[ShapeSpec]) -> ROIPooler:
    return ROIPooler(cfg_head.POOLER_RESOLUTION, [1.0 / shape.stride for shape in feature_shapes],
                     cfg_head.POOLER_SAMPLING_RATIO, cfg_head.POOLER_TYPE)


def _output_layers(cfg: CfgNode, input_size: int) -> FastRCNNOutputLayers:
    box = cfg.MODEL.ROI_BOX_HEAD
    return FastRCNNOutputLayers(
        input_size, cfg.MODEL.ROI_HEADS.NUM_CLASSES,
        Box2BoxTransform(box.BBOX_REG_WEIGHTS, legacy_plus_one=cfg.MODEL.LEGACY_PLUS_ONE), box.SMOOTH_L1_BETA,
        box.BBOX_REG_LOSS_WEIGHT, box.CLS_AGNOSTIC_BBOX_REG, cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST,
        cfg.MODEL.ROI_HEADS.NMS_THRESH_TEST, cfg.TEST.DETECTIONS_PER_IMAGE, cfg.MODEL.LEGACY_PLUS_ONE)


class ROIHeads(nn.Module):
    """Proposal sampling shared by the box heads: ground truth appended, matched, 512 ROIs at 25 % foreground."""

    def __init__(self, cfg: CfgNode, input_shape: Dict[str, ShapeSpec]) -> None:
        super().__init__()
        heads = cfg.MODEL.ROI_HEADS
        missing = [name for name in heads.IN_FEATURES if name not in input_shape]
        if missing:
            raise ConfigError(f"MODEL.ROI_HEADS.IN_FEATURES: {missing} are not backbone outputs "
                              f"({', '.join(input_shape)})")
        self.in_features = list(heads.IN_FEATURES)
        self.num_classes = heads.NUM_CLASSES
        self.batch_size_per_image = heads.BATCH_SIZE_PER_IMAGE
        self.positive_fraction = heads.POSITIVE_FRACTION
        self.append_gt = heads.PROPOSAL_APPEND_GT
        self.legacy_plus_one = cfg.MODEL.LEGACY_PLUS_ONE
        self.matcher = Matcher(heads.IOU_THRESHOLDS, heads.IOU_LABELS, allow_low_quality_matches=False)

    @torch.no_grad()
    def label_and_sample_proposals(self, proposals: List[Instances], targets: List[Instances]) -> List[Instances]:
        """Sampled ROIs per image with ``gt_classes`` (num_classes = background) and the matched ground truth's
        other fields (``gt_boxes``, keypoints, DensePose points, ...; background ROIs get their own box)."""
        sampled = []
        for image_proposals, image_targets in zip(proposals, targets):
            if self.append_gt and len(image_targets):
                gt = Instances(image_proposals.image_size, proposal_boxes=image_targets.gt_boxes,
                               # Any value: appended boxes are never ranked by objectness.
                               objectness_logits=torch.full((len(image_targets),), 10.0,
                                                            device=image_targets.gt_boxes.device))
                image_proposals = Instances.cat([image_proposals, gt])
            sampled.append(self._sample_image(image_proposals, image_targets))
        return sampled

    def _sample_image(self, proposals: Instances, targets: Instances) -> Instances:
        boxes = proposals.proposal_boxes
        if len(targets):
            matches, match_labels = self.matcher(pairwise_iou(targets.gt_boxes, boxes, self.legacy_plus_one))
            gt_classes = targets.gt_classes[matches].clone()
            gt_classes[match_labels == 0] = self.num_classes
            gt_classes[match_labels == -1] = -1
        else:
            matches = torch.zeros(len(boxes), dtype=torch.long, device=boxes.device)
            gt_classes = torch.full((len(boxes),), self.num_classes, dtype=torch.long, device=boxes.device)
        positive, negative = subsample_labels(gt_classes, self.batch_size_per_image, self.positive_fraction,
                                              self.num_classes)
        chosen = torch.cat([positive, negative])
        sampled = proposals[chosen]
        sampled.gt_classes = gt_classes[chosen]
        if len(targets):
            for name, value in targets[matches[chosen]].fields().items():
                if name != "gt_classes":
                    sampled.set(name, value)
        else:
            sampled.gt_boxes = boxes[chosen].clone()
        return sampled

    def forward(self, features: Dict[str, torch.Tensor], proposals: List[Instances],
                targets: Optional[List[Instances]] = None):
        """Training: (sampled proposals, losses); test: (detections per image, {}).

        ``proposals`` per image carry ``proposal_boxes`` and ``objectness_logits``; ``targets`` (training)
        ``gt_boxes``, ``gt_classes`` and whatever ground truth the subclass's branches need.
        """
        if self.training:
            proposals = self.label_and_sample_proposals(proposals, targets)
            losses = self.box_predictor.losses(self._box_predictions(features, proposals), proposals)
            losses.update(self.forward_branches(features, select_foreground(proposals, self.num_classes)))
            return proposals, losses
        detections = self.box_predictor.inference(self._box_predictions(features, proposals), proposals)
        self.forward_branches(features, detections)
        return detections, {}

    def _box_predictions(self, features: Dict[str, torch.Tensor], proposals: List[Instances]):
        """(class logits, box deltas) of the proposals' ROIs."""
        raise NotImplementedError

    def forward_branches(self, features: Dict[str, torch.Tensor], instances: List[Instances]) -> Losses:
        """Extra branches of a subclass (DensePose, LCR-Net): losses in training, fields added at test."""
        return {}


def select_foreground(proposals: Sequence[Instances], background: int) -> List[Instances]:
    """The foreground ROIs of each image (gt_classes neither ignored nor background)."""
    return [p[(p.gt_classes >= 0) & (p.gt_classes != background)] for p in proposals]


class StandardROIHeads(ROIHeads):
    """FPN ROI heads: per-level ROIAlign (level by box size), conv/FC box head, Fast R-CNN outputs."""

    def __init__(self, cfg: CfgNode, input_shape: Dict[str, ShapeSpec]) -> None:
        super().__init__(cfg, input_shape)
        box = cfg.MODEL.ROI_BOX_HEAD
        shapes = [input_shape[name] for name in self.in_features]
        if len({shape.channels for shape in shapes}) != 1:
            raise ConfigError("MODEL.ROI_HEADS.IN_FEATURES: the pooled levels must have one channel count")
        self.box_pooler = _pooler(box, shapes)
        self.box_head = FastRCNNConvFCHead(shapes[0], box.POOLER_RESOLUTION, box.NUM_CONV, box.CONV_DIM,
                                           box.NUM_FC, box.FC_DIM)
        self.box_predictor = _output_layers(cfg, self.box_head.output_size)

    def _box_predictions(self, features: Dict[str, torch.Tensor], proposals: List[Instances]):
        pooled = self.box_pooler([features[name] for name in self.in_features],
                                 [p.proposal_boxes for p in proposals])
        return self.box_predictor(self.box_head(pooled))


class Res5ROIHeads(ROIHeads):
    """C4 ROI heads: ROIAlign on res4, ResNet's res5 stage, average pooling, Fast R-CNN outputs."""

    def __init__(self, cfg: CfgNode, input_shape: Dict[str, ShapeSpec]) -> None:
        super().__init__(cfg, input_shape)
        if len(self.in_features) != 1:
            raise ConfigError(f"MODEL.ROI_HEADS.IN_FEATURES: Res5ROIHeads pools one feature map, got "
                              f"{self.in_features}")
        box = cfg.MODEL.ROI_BOX_HEAD
        self.pooler = _pooler(box, [input_shape[self.in_features[0]]])
        self.res5, out_channels = make_res5_stage(cfg)
        self.box_predictor = _output_layers(cfg, out_channels)

    def pooled_res5(self, features: Dict[str, torch.Tensor], boxes: List[torch.Tensor]) -> torch.Tensor:
        """res5 features (R, 2048, S/2, S/2) of ROIs pooled from the one input level."""
        return self.res5(self.pooler([features[self.in_features[0]]], boxes))

    def _box_predictions(self, features: Dict[str, torch.Tensor], proposals: List[Instances]):
        pooled = self.pooled_res5(features, [p.proposal_boxes for p in proposals])
        return self.box_predictor(pooled.mean(dim=(2, 3)))


ROI_HEADS_REGISTRY: Registry = Registry("ROI heads")
ROI_HEADS_REGISTRY.register("StandardROIHeads", StandardROIHeads)
ROI_HEADS_REGISTRY.register("Res5ROIHeads", Res5ROIHeads)


def build_roi_heads(cfg: CfgNode, input_shape: Dict[str, ShapeSpec]) -> ROIHeads:
    """The ROI heads named by MODEL.ROI_HEADS.NAME (families register their own, e.g. DensePose's)."""
    return ROI_HEADS_REGISTRY.get(cfg.MODEL.ROI_HEADS.NAME, "MODEL.ROI_HEADS.NAME")(cfg, input_shape)
