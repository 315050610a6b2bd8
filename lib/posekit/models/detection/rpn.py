"""Region proposal network with detectron2's semantics (densepose.md 1.2); Detectron v1's C4 RPN of LCR-Net
(lcrnet.md 3.3) is the same network with ``MODEL.LEGACY_PLUS_ONE`` and Detectron's anchor and top-k values.
"""
from typing import Callable, Dict, List, Optional, Sequence, Tuple, TypeVar, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from yacs.config import CfgNode

from ...ops import batched_nms
from ...structures.boxes import clip_boxes, half_open, inside_image, nonempty, pairwise_iou
from ...utils.errors import ConfigError

from .anchors import AnchorGenerator
from .box_coder import Box2BoxTransform
from .matcher import IGNORE, NEGATIVE, POSITIVE, Matcher
from .sampler import subsample_labels

ImageSize = Tuple[int, int]
T = TypeVar("T")


class StandardRPNHead(nn.Module):
    """Shared over levels: 3x3 conv + ReLU, then 1x1 convs to A objectness logits and 4A anchor deltas."""

    def __init__(self, in_channels: int, num_anchors: int, box_dim: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, in_channels, kernel_size=3, padding=1)
        self.objectness_logits = nn.Conv2d(in_channels, num_anchors, kernel_size=1)
        self.anchor_deltas = nn.Conv2d(in_channels, num_anchors * box_dim, kernel_size=1)
        for layer in (self.conv, self.objectness_logits, self.anchor_deltas):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.constant_(layer.bias, 0)

    def forward(self, features: List[Tensor]) -> Tuple[List[Tensor], List[Tensor]]:
        """Per level: logits (N, A, H, W) and deltas (N, 4A, H, W), channel 4a + k being anchor a's k-th delta."""
        logits, deltas = [], []
        for feature in features:
            hidden = F.relu(self.conv(feature))
            logits.append(self.objectness_logits(hidden))
            deltas.append(self.anchor_deltas(hidden))
        return logits, deltas


def _select_image_proposals(boxes: Tensor, scores: Tensor, levels: Tensor, image_size: ImageSize,
                            nms_thresh: float, post_nms_topk: int, min_box_size: float, training: bool,
                            legacy_plus_one: bool) -> Dict[str, Tensor]:
    """One image's proposals from its per-level top-k: clip, drop small boxes, NMS per level, best
    ``post_nms_topk`` by score."""
    finite = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores)
    if not bool(finite.all()):
        if training:
            raise FloatingPointError("RPN predicted boxes or scores contain Inf/NaN: training has diverged")
        boxes, scores, levels = boxes[finite], scores[finite], levels[finite]
    boxes = clip_boxes(boxes, image_size, legacy_plus_one)
    keep = nonempty(boxes, min_box_size, legacy_plus_one)
    boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
    # Under the "+1" convention Detectron's NMS counts pixels inclusively: its IoU is that of the half-open boxes.
    keep = batched_nms(half_open(boxes, legacy_plus_one), scores, levels, nms_thresh)[:post_nms_topk]
    return {"proposal_boxes": boxes[keep], "objectness_logits": scores[keep]}


def find_top_rpn_proposals(proposals: List[Tensor], pred_objectness_logits: List[Tensor],
                           image_sizes: Sequence[ImageSize], nms_thresh: float, pre_nms_topk: int,
                           post_nms_topk: int, min_box_size: float, training: bool,
                           legacy_plus_one: bool = False) -> List[Dict[str, Tensor]]:
    """Per image, the ``post_nms_topk`` best proposals (sorted by decreasing logit) of all levels.

    ``proposals[i]`` (N, H_i W_i A, 4) are decoded boxes and ``pred_objectness_logits[i]`` (N, H_i W_i A) their
    logits; the ``pre_nms_topk`` best of each level enter clipping, the size filter and NMS within the level.
    """
    top_boxes, top_scores, level_ids = [], [], []
    batch_index = torch.arange(len(image_sizes), device=proposals[0].device)[:, None]
    for level, (boxes, logits) in enumerate(zip(proposals, pred_objectness_logits)):
        count = min(logits.shape[1], pre_nms_topk)
        scores, index = logits.topk(count, dim=1)
        top_boxes.append(boxes[batch_index, index])
        top_scores.append(scores)
        level_ids.append(torch.full((count,), level, dtype=torch.int64, device=logits.device))
    boxes, scores, levels = torch.cat(top_boxes, dim=1), torch.cat(top_scores, dim=1), torch.cat(level_ids)
    return [_select_image_proposals(boxes[n], scores[n], levels, size, nms_thresh, post_nms_topk, min_box_size,
                                    training, legacy_plus_one) for n, size in enumerate(image_sizes)]


def _flatten_predictions(logits: List[Tensor], deltas: List[Tensor], box_dim: int) -> Tuple[List[Tensor], List[Tensor]]:
    """Head outputs in anchor order: logits (N, H W A) and deltas (N, H W A, 4) per level."""
    flat_logits = [x.permute(0, 2, 3, 1).flatten(1) for x in logits]
    flat_deltas = [x.view(x.shape[0], -1, box_dim, x.shape[-2], x.shape[-1]).permute(0, 3, 4, 1, 2).flatten(1, -2)
                   for x in deltas]
    return flat_logits, flat_deltas


class RPN(nn.Module):
    """Region proposal network: anchors, a shared head, training losses and proposal selection.

    ``forward(image_sizes, features, gt_boxes)`` returns per-image proposals {"proposal_boxes" (P, 4),
    "objectness_logits" (P,)}, detached and sorted by decreasing logit, and, in training, the losses
    {"loss_rpn_cls", "loss_rpn_loc"}. Train and test top-k values follow ``self.training``.
    """

    def __init__(self, *, in_features: List[str], head: nn.Module, anchor_generator: AnchorGenerator,
                 anchor_matcher: Matcher, box2box_transform: Box2BoxTransform, batch_size_per_image: int,
                 positive_fraction: float, pre_nms_topk: Tuple[int, int], post_nms_topk: Tuple[int, int],
                 nms_thresh: float = 0.7, min_box_size: float = 0.0, anchor_boundary_thresh: float = -1.0,
                 loss_weight: Union[float, Dict[str, float]] = 1.0, smooth_l1_beta: float = 0.0,
                 legacy_plus_one: bool = False):
        super().__init__()
        self.in_features = list(in_features)
        self.rpn_head = head
        self.anchor_generator = anchor_generator
        self.anchor_matcher = anchor_matcher
        self.box2box_transform = box2box_transform
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        self.pre_nms_topk = {True: pre_nms_topk[0], False: pre_nms_topk[1]}
        self.post_nms_topk = {True: post_nms_topk[0], False: post_nms_topk[1]}
        self.nms_thresh = nms_thresh
        self.min_box_size = float(min_box_size)
        self.anchor_boundary_thresh = anchor_boundary_thresh
        if not isinstance(loss_weight, dict):
            loss_weight = {"loss_rpn_cls": float(loss_weight), "loss_rpn_loc": float(loss_weight)}
        self.loss_weight = loss_weight
        self.smooth_l1_beta = smooth_l1_beta
        self.legacy_plus_one = legacy_plus_one

    @classmethod
    def from_config(cls, cfg: CfgNode, input_shape: Dict[str, Tuple[int, int]]) -> "RPN":
        """The RPN of detectron2's MODEL.RPN / MODEL.ANCHOR_GENERATOR keys; ``input_shape`` maps each feature
        name to (channels, stride)."""
        rpn = cfg.MODEL.RPN
        in_features = list(rpn.IN_FEATURES)
        channels = _shared_channels(in_features, input_shape)
        _check_rpn_keys(rpn)
        legacy = bool(cfg.MODEL.LEGACY_PLUS_ONE)
        anchor_generator = _anchor_generator(cfg.MODEL.ANCHOR_GENERATOR, [input_shape[f][1] for f in in_features],
                                             legacy)
        return cls(
            in_features=in_features,
            head=StandardRPNHead(channels, anchor_generator.num_anchors[0]),
            anchor_generator=anchor_generator,
            anchor_matcher=_from_key("MODEL.RPN.IOU_THRESHOLDS / IOU_LABELS", lambda: Matcher(
                rpn.IOU_THRESHOLDS, rpn.IOU_LABELS, allow_low_quality_matches=True)),
            box2box_transform=_from_key("MODEL.RPN.BBOX_REG_WEIGHTS", lambda: Box2BoxTransform(
                rpn.BBOX_REG_WEIGHTS, legacy_plus_one=legacy)),
            batch_size_per_image=rpn.BATCH_SIZE_PER_IMAGE,
            positive_fraction=rpn.POSITIVE_FRACTION,
            pre_nms_topk=(rpn.PRE_NMS_TOPK_TRAIN, rpn.PRE_NMS_TOPK_TEST),
            post_nms_topk=(rpn.POST_NMS_TOPK_TRAIN, rpn.POST_NMS_TOPK_TEST),
            nms_thresh=rpn.NMS_THRESH,
            min_box_size=cfg.MODEL.PROPOSAL_GENERATOR.MIN_SIZE,
            anchor_boundary_thresh=rpn.BOUNDARY_THRESH,
            loss_weight={"loss_rpn_cls": rpn.LOSS_WEIGHT,
                         "loss_rpn_loc": rpn.BBOX_REG_LOSS_WEIGHT * rpn.LOSS_WEIGHT},
            smooth_l1_beta=rpn.SMOOTH_L1_BETA,
            legacy_plus_one=legacy,
        )

    def _subsample_labels(self, labels: Tensor) -> Tensor:
        """The labels with all but a random sample of positives and negatives set to ignore."""
        pos_idx, neg_idx = subsample_labels(labels, self.batch_size_per_image, self.positive_fraction, NEGATIVE)
        sampled = torch.full_like(labels, IGNORE)
        sampled[pos_idx] = POSITIVE
        sampled[neg_idx] = NEGATIVE
        return sampled

    @torch.no_grad()
    def label_and_sample_anchors(self, anchors: List[Tensor], image_sizes: Sequence[ImageSize],
                                 gt_boxes: List[Tensor]) -> Tuple[List[Tensor], List[Tensor]]:
        """Per image, sampled anchor labels (R,) in {-1, 0, 1} and each anchor's matched gt box (R, 4) over the
        R anchors of all levels (matched boxes mean nothing where the label is not 1)."""
        anchors = torch.cat(anchors)
        labels, matched_boxes = [], []
        for image_size, boxes in zip(image_sizes, gt_boxes):
            matched_idxs, image_labels = self.anchor_matcher(pairwise_iou(boxes, anchors, self.legacy_plus_one))
            image_labels = image_labels.to(boxes.device)
            if self.anchor_boundary_thresh >= 0:
                # Detectron's straddle rule: anchors reaching too far past the border are not trained on.
                image_labels[~inside_image(anchors, image_size, self.anchor_boundary_thresh)] = IGNORE
            labels.append(self._subsample_labels(image_labels))
            matched_boxes.append(boxes[matched_idxs] if len(boxes) else torch.zeros_like(anchors))
        return labels, matched_boxes

    def losses(self, anchors: List[Tensor], pred_objectness_logits: List[Tensor], gt_labels: List[Tensor],
               pred_anchor_deltas: List[Tensor], matched_boxes: List[Tensor]) -> Dict[str, Tensor]:
        """Objectness BCE over sampled anchors and smooth-L1 over positive anchors' deltas, both summed and divided
        by BATCH_SIZE_PER_IMAGE x images, then weighted."""
        labels = torch.stack(gt_labels)
        all_anchors = torch.cat(anchors)
        target_deltas = torch.stack([self.box2box_transform.get_deltas(all_anchors, boxes) for boxes in matched_boxes])
        positive, sampled = labels == POSITIVE, labels >= 0
        loc = F.smooth_l1_loss(torch.cat(pred_anchor_deltas, dim=1)[positive], target_deltas[positive],
                               reduction="sum", beta=self.smooth_l1_beta)
        cls = F.binary_cross_entropy_with_logits(torch.cat(pred_objectness_logits, dim=1)[sampled],
                                                 labels[sampled].to(torch.float32), reduction="sum")
        normalizer = self.batch_size_per_image * len(gt_labels)
        losses = {"loss_rpn_cls": cls / normalizer, "loss_rpn_loc": loc / normalizer}
        return {name: value * self.loss_weight.get(name, 1.0) for name, value in losses.items()}

    @torch.no_grad()
    def predict_proposals(self, anchors: List[Tensor], pred_objectness_logits: List[Tensor],
                          pred_anchor_deltas: List[Tensor],
                          image_sizes: Sequence[ImageSize]) -> List[Dict[str, Tensor]]:
        """Decoded, filtered proposals per image; no gradient flows into them (approximate joint training)."""
        decoded = []
        for level_anchors, deltas in zip(anchors, pred_anchor_deltas):
            images = deltas.shape[0]
            repeated = level_anchors[None].expand(images, -1, -1).reshape(-1, 4)
            decoded.append(self.box2box_transform.apply_deltas(deltas.reshape(-1, 4), repeated).view(images, -1, 4))
        return find_top_rpn_proposals(decoded, pred_objectness_logits, image_sizes, self.nms_thresh,
                                      self.pre_nms_topk[self.training], self.post_nms_topk[self.training],
                                      self.min_box_size, self.training, self.legacy_plus_one)

    def forward(self, image_sizes: Sequence[ImageSize], features: Dict[str, Tensor],
                gt_boxes: Optional[List[Tensor]] = None) -> Tuple[List[Dict[str, Tensor]], Dict[str, Tensor]]:
        """Proposals per image and, in training (``gt_boxes`` (G_i, 4) per image required), the RPN losses."""
        maps = [features[name] for name in self.in_features]
        anchors = self.anchor_generator(maps)
        logits, deltas = _flatten_predictions(*self.rpn_head(maps), box_dim=4)
        losses: Dict[str, Tensor] = {}
        if self.training:
            if gt_boxes is None:
                raise ValueError("RPN needs gt_boxes in training")
            labels, matched_boxes = self.label_and_sample_anchors(anchors, image_sizes, gt_boxes)
            losses = self.losses(anchors, logits, labels, deltas, matched_boxes)
        return self.predict_proposals(anchors, logits, deltas, image_sizes), losses


def _shared_channels(in_features: List[str], input_shape: Dict[str, Tuple[int, int]]) -> int:
    """The one channel count of the RPN's input features (the head is shared over levels)."""
    missing = [name for name in in_features if name not in input_shape]
    if not in_features or missing:
        raise ConfigError(f"MODEL.RPN.IN_FEATURES: {in_features} must name features of the backbone, "
                          f"which has {sorted(input_shape)}")
    channels = sorted({input_shape[name][0] for name in in_features})
    if len(channels) != 1:
        raise ConfigError(f"MODEL.RPN.IN_FEATURES: the shared RPN head needs one channel count over "
                          f"{in_features}, got {channels}")
    return channels[0]


def _check_rpn_keys(rpn: CfgNode) -> None:
    """ConfigError for MODEL.RPN values posekit does not implement or that make no sense."""
    _require(rpn.HEAD_NAME == "StandardRPNHead", "MODEL.RPN.HEAD_NAME", "'StandardRPNHead'", rpn.HEAD_NAME)
    _require(rpn.BBOX_REG_LOSS_TYPE == "smooth_l1", "MODEL.RPN.BBOX_REG_LOSS_TYPE", "'smooth_l1'",
             rpn.BBOX_REG_LOSS_TYPE)
    _require(list(rpn.CONV_DIMS) == [-1], "MODEL.RPN.CONV_DIMS", "[-1] (one conv of the input width)",
             rpn.CONV_DIMS)
    _require(rpn.BATCH_SIZE_PER_IMAGE > 0, "MODEL.RPN.BATCH_SIZE_PER_IMAGE", "a positive count",
             rpn.BATCH_SIZE_PER_IMAGE)
    _require(0.0 <= rpn.POSITIVE_FRACTION <= 1.0, "MODEL.RPN.POSITIVE_FRACTION", "a fraction in [0, 1]",
             rpn.POSITIVE_FRACTION)


def _anchor_generator(anchor_cfg: CfgNode, strides: List[int], legacy_plus_one: bool) -> AnchorGenerator:
    """The anchors of MODEL.ANCHOR_GENERATOR, as many on every level (the head is shared)."""
    generator = _from_key("MODEL.ANCHOR_GENERATOR (SIZES, ASPECT_RATIOS, OFFSET)", lambda: AnchorGenerator(
        anchor_cfg.SIZES, anchor_cfg.ASPECT_RATIOS, strides, anchor_cfg.OFFSET, legacy_plus_one))
    if len(set(generator.num_anchors)) != 1:
        raise ConfigError(f"MODEL.ANCHOR_GENERATOR.SIZES / ASPECT_RATIOS: the shared RPN head needs as many "
                          f"anchors on every level, got {generator.num_anchors}")
    return generator


def _require(condition: bool, key: str, expected: str, value: object) -> None:
    """Raise ConfigError naming ``key`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(f"{key}: expected {expected}, got {value!r}")


def _from_key(key: str, build: Callable[[], T]) -> T:
    """``build()``, its ValueError turned into a ConfigError naming the config key the values came from."""
    try:
        return build()
    except ValueError as error:
        raise ConfigError(f"{key}: {error}") from error
