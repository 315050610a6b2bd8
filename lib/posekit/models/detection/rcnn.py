"""``GeneralizedRCNN``: backbone -> RPN -> ROI heads, the two-stage detector every detector family builds on.

Inputs are detectron2's: a list of per-image dicts with "image" (3, H, W) pixel values in
``INPUT.FORMAT`` channel order (uint8 or float, already resized), optionally "instances" (training
ground truth) and "height" / "width" (the original size the detections are mapped back to).
"""
import logging
from typing import Dict, List, Sequence, Tuple, Type

import torch
from torch import nn
from yacs.config import CfgNode

from ...data.collate import pad_images
from ...structures import Instances
from ...structures.boxes import clip_boxes
from ...utils.errors import CheckpointError, ConfigError, DataError
from ..backbones.build import build_backbone
from ..build import register_model
from ..checkpoint import load_weights
from ..preprocess import PixelNormalizer
from .roi_heads import build_roi_heads
from .rpn import RPN

logger = logging.getLogger(__name__)
# A name only backbone-level files have: the ResNet stem without the detector's prefixes.
IMAGENET_MARKER = "stem.conv1.weight"


class GeneralizedRCNN(nn.Module):
    """Training: ``model(batch)`` -> dict of losses; test: ``model(batch)`` -> [{"instances": detections}]."""

    def __init__(self, backbone: nn.Module, proposal_generator: RPN, roi_heads: nn.Module,
                 normalizer: PixelNormalizer, legacy_plus_one: bool = False) -> None:
        super().__init__()
        self.normalizer = normalizer
        self.backbone = backbone
        self.proposal_generator = proposal_generator
        self.roi_heads = roi_heads
        self.legacy_plus_one = legacy_plus_one

    @classmethod
    def from_config(cls, cfg: CfgNode) -> "GeneralizedRCNN":
        """The detector of the MODEL section (detectron2's keys)."""
        if cfg.MODEL.PROPOSAL_GENERATOR.NAME != "RPN":
            raise ConfigError(f"MODEL.PROPOSAL_GENERATOR.NAME: only 'RPN' is available, got "
                              f"'{cfg.MODEL.PROPOSAL_GENERATOR.NAME}'")
        backbone = build_backbone(cfg)
        shapes = backbone.output_shape()
        normalizer = PixelNormalizer(cfg.MODEL.PIXEL_MEAN, cfg.MODEL.PIXEL_STD, 1.0, cfg.INPUT.FORMAT)
        return cls(backbone, RPN.from_config(cfg, shapes), build_roi_heads(cfg, shapes), normalizer,
                   cfg.MODEL.LEGACY_PLUS_ONE)

    def forward(self, batched_inputs: Sequence[Dict]):
        """Losses in training mode, per-image detections (in original-image pixels) otherwise."""
        images, image_sizes = self.preprocess(batched_inputs)
        features = self.backbone(images)
        if self.training:
            targets = [self._targets(item) for item in batched_inputs]
            proposals, rpn_losses = self.proposal_generator(image_sizes, features, [t.gt_boxes for t in targets])
            _, roi_losses = self.roi_heads(features, self._as_instances(proposals, image_sizes), targets)
            # Image-level branches of the ROI heads (AMANet's semantic masks) read the items themselves.
            image_losses = getattr(self.roi_heads, "image_losses", None)
            if image_losses is not None:
                roi_losses.update(image_losses(features, batched_inputs))
            return {**rpn_losses, **roi_losses}
        proposals, _ = self.proposal_generator(image_sizes, features, None)
        detections, _ = self.roi_heads(features, self._as_instances(proposals, image_sizes))
        return [{"instances": self.to_original_size(found, item)} for found, item in zip(detections, batched_inputs)]

    def preprocess(self, batched_inputs: Sequence[Dict]) -> Tuple[torch.Tensor, List[Tuple[int, int]]]:
        """Normalised images zero-padded to one batch (padding after normalisation, as detectron2)."""
        device = self.normalizer.mean.device
        images = [self.normalizer(item["image"].to(device)[None])[0] for item in batched_inputs]
        # Heads may need more (KTN's MID v2: even sizes up to its second-coarsest input); sizes are powers of 2.
        return pad_images(images, max(getattr(self.backbone, "size_divisibility", 0),
                                      getattr(self.roi_heads, "size_divisibility", 0)))

    def _targets(self, item: Dict) -> Instances:
        if "instances" not in item:
            raise DataError(f"training input for image {item.get('file_name', item.get('image_id', '?'))} has no "
                            f"'instances' (ground truth)")
        return item["instances"].to(self.normalizer.mean.device)

    @staticmethod
    def _as_instances(proposals: Sequence[Dict[str, torch.Tensor]],
                      image_sizes: Sequence[Tuple[int, int]]) -> List[Instances]:
        return [Instances(size, **fields) for fields, size in zip(proposals, image_sizes)]

    def convert_official_state_dict(self, state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """ImageNet backbone files (detectron2 ResNet names ``stem.*``, ``res2.*``, ...) placed in this detector;
        detector files (``backbone.*``, ...) pass unchanged, or through the ROI heads' own
        ``convert_official_state_dict`` when they have one (KTN). C4's res5 belongs to the box head."""
        if IMAGENET_MARKER not in state_dict:
            convert = getattr(self.roi_heads, "convert_official_state_dict", None)
            return convert(state_dict) if convert else state_dict
        body = "backbone.bottom_up." if hasattr(self.backbone, "bottom_up") else "backbone."
        head_res5 = hasattr(self.roi_heads, "res5")
        return {(f"roi_heads.{name}" if head_res5 and name.startswith("res5.") else body + name): value
                for name, value in state_dict.items()}

    def to_original_size(self, detections: Instances, item: Dict) -> Instances:
        """Detections (boxes, keypoints) rescaled from the network input to the item's original height and width,
        boxes clipped."""
        input_height, input_width = item["image"].shape[-2:]
        height, width = item.get("height", input_height), item.get("width", input_width)
        scale = torch.tensor([width / input_width, height / input_height] * 2, device=detections.pred_boxes.device)
        result = Instances((height, width), **detections.fields())
        result.pred_boxes = clip_boxes(detections.pred_boxes * scale, (height, width), self.legacy_plus_one)
        if result.has("pred_keypoints"):  # x, y scaled as detectron2's detector_postprocess; scores kept
            result.pred_keypoints = torch.cat([detections.pred_keypoints[..., :2] * scale[:2],
                                               detections.pred_keypoints[..., 2:]], dim=-1)
        return result


def build_generalized_rcnn(cfg: CfgNode, is_train: bool,
                           model_class: Type[GeneralizedRCNN] = GeneralizedRCNN) -> GeneralizedRCNN:
    """The detector (or a family's subclass, e.g. LCR-Net's); for training, initialised from MODEL.WEIGHTS
    (ImageNet backbone or a whole detector) when set."""
    model = model_class.from_config(cfg)
    weights = cfg.MODEL.WEIGHTS
    if is_train and weights:
        if "://" in weights:
            raise CheckpointError(f"MODEL.WEIGHTS: {weights} is a URL; posekit downloads nothing: download the file "
                                  f"and set MODEL.WEIGHTS to its local path")
        missing = load_weights(model, weights, strict=False)
        logger.info("=> initialised the detector from %s (%d entries left at their initialisation)", weights,
                    len(missing))
    return model


register_model("GeneralizedRCNN", build_generalized_rcnn)
