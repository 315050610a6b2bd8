"""detectron2's DatasetMapper for the two-stage person detector (densepose.md §1.4): a catalog record ->
``{"image", "instances", "height", "width", "image_id", "file_name"}``.

Pixels follow detectron2 so that official checkpoints see what they were trained on: images are decoded with
Pillow with their EXIF orientation applied (``detectron2.data.detection_utils.read_image``), resized by
ResizeShortestEdge with Pillow's BILINEAR filter (which widens its support when shrinking, unlike
cv2.INTER_LINEAR), then, in training, flipped left-right with probability 0.5.

Ground truth follows detectron2's ``transform_instance_annotations`` / ``filter_empty_instances``: crowd
annotations are left out, boxes are clipped to the image and empty ones dropped, keypoints moved outside the
image become unlabelled and unlabelled keypoints are all zeros. Classes are contiguous ids: COCO's person
(category_id 1) is class 0, the detector's only class.

Random draws come from ``np.random.default_rng(seed_sequence)`` in detectron2's order: the short side, then
the flip.
"""
import io
import logging
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image, ImageOps
from yacs.config import CfgNode

from ..structures import Instances
from ..utils.errors import ConfigError, DataError
from .catalog import annotations_to_instances
from .image_io import read_bytes
from .instance_transforms import random_flip, resize_instances, resize_shortest_edge_size
from .metadata import COCO

PERSON_CATEGORY_ID = 1
CLASS_OF_CATEGORY = {PERSON_CATEGORY_ID: 0}
FLIP_PROBABILITY = 0.5
IMAGE_FORMATS = ("BGR", "RGB")
FLIP_MODES = ("horizontal", "none")
# detectron2's filter_empty_instances drops boxes whose width or height is not above this.
EMPTY_BOX_SIDE = 1e-5
# The annotation fields the detector reads; segmentations and DensePose fields are not moved along.
DETECTOR_FIELDS = ("id", "bbox", "category_id", "iscrowd")

logger = logging.getLogger(__name__)


def read_image(path: str) -> np.ndarray:
    """An image file (or ``<archive>.zip@<member>``) as RGB uint8 (H, W, 3), EXIF orientation applied."""
    try:
        with Image.open(io.BytesIO(read_bytes(path))) as image:
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except OSError as err:
        raise DataError(f"{path}: not a decodable image ({err})") from err


def pil_resize(image: np.ndarray, new_height: int, new_width: int) -> np.ndarray:
    """detectron2's ResizeTransform on a uint8 (H, W, 3) image: Pillow's BILINEAR filter."""
    return np.asarray(Image.fromarray(image).resize((new_width, new_height), Image.Resampling.BILINEAR))


def filter_images_without_instances(records: List[dict]) -> List[dict]:
    """The records with at least one non-crowd annotation (detectron2's FILTER_EMPTY_ANNOTATIONS); logs the drop."""
    kept = [record for record in records
            if any(not ann.get("iscrowd", 0) for ann in record.get("annotations", []))]
    logger.info("Removed %d images without non-crowd annotations; %d images left.", len(records) - len(kept),
                len(kept))
    return kept


def _config_value(cfg: CfgNode, key: str) -> Any:
    node = cfg
    for part in key.split("."):
        if not isinstance(node, CfgNode) or part not in node:
            raise ConfigError(f"config has no key {key}, which the detection mapper reads")
        node = node[part]
    return node


def _sizes(value: Union[int, Sequence[int]], key: str) -> Tuple[int, ...]:
    sizes = (value,) if isinstance(value, int) else tuple(value)
    if not sizes or not all(isinstance(size, int) and size > 0 for size in sizes):
        raise ConfigError(f"{key} must be one or more positive ints (short-side lengths), got {value!r}")
    return sizes


def _check_positive(value: int, key: str, allow_zero: bool = False) -> None:
    if not isinstance(value, int) or value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{key} must be a {'non-negative' if allow_zero else 'positive'} int, got {value!r}")


def _clip_boxes(instances: Instances) -> Instances:
    """Boxes clipped to [0, W] x [0, H]; instances whose clipped box is empty dropped."""
    height, width = instances.image_size
    limits = torch.tensor([width, height, width, height], dtype=instances.gt_boxes.dtype)
    instances.gt_boxes = instances.gt_boxes.clamp(min=0).minimum(limits)
    sides = instances.gt_boxes[:, 2:] - instances.gt_boxes[:, :2]
    return instances[(sides > EMPTY_BOX_SIDE).all(dim=1)]


def _unlabel_outside(keypoints: torch.Tensor, image_size: Tuple[int, int]) -> torch.Tensor:
    """Keypoints outside [0, W] x [0, H] get visibility 0, and every unlabelled keypoint becomes (0, 0, 0)."""
    height, width = image_size
    x, y = keypoints[..., 0], keypoints[..., 1]
    inside = (x >= 0) & (y >= 0) & (x <= width) & (y <= height)
    labelled = inside & (keypoints[..., 2] != 0)
    return keypoints * labelled[..., None].to(keypoints.dtype)


def _as_detectron2_leaves_them(instances: Instances) -> Instances:
    """Boxes clipped, empty ones dropped, keypoints outside the image unlabelled (module docstring)."""
    instances = _clip_boxes(instances)
    if instances.has("gt_keypoints"):
        instances.gt_keypoints = _unlabel_outside(instances.gt_keypoints, instances.image_size)
    return instances


class DetectionMapper:
    """A catalog record -> the detector's input dict (module docstring); training draws sizes and flips."""

    def __init__(self, is_train: bool, min_size_train: Union[int, Sequence[int]], max_size_train: int,
                 min_size_test: int, max_size_test: int, random_flip: bool,
                 keypoint_flip_index: Optional[Sequence[int]] = None, num_joints: Optional[int] = None,
                 image_format: str = "BGR") -> None:
        self.min_size_train = _sizes(min_size_train, "INPUT.MIN_SIZE_TRAIN")
        _check_positive(max_size_train, "INPUT.MAX_SIZE_TRAIN")
        # detectron2: a test short side of 0 leaves images at their size.
        _check_positive(min_size_test, "INPUT.MIN_SIZE_TEST", allow_zero=True)
        _check_positive(max_size_test, "INPUT.MAX_SIZE_TEST")
        if image_format not in IMAGE_FORMATS:
            raise ConfigError(f"INPUT.FORMAT must be one of {', '.join(IMAGE_FORMATS)}, got '{image_format}'")
        if num_joints is not None and random_flip and (keypoint_flip_index is None
                                                       or len(keypoint_flip_index) != num_joints):
            raise ConfigError(f"flipping {num_joints} keypoints needs a keypoint flip index of that length, got "
                              f"{None if keypoint_flip_index is None else len(keypoint_flip_index)}")
        self.is_train = is_train
        self.max_size_train = max_size_train
        self.min_size_test = min_size_test
        self.max_size_test = max_size_test
        self.random_flip = random_flip
        # The DensePose chart and UV symmetry tables when instances carry DensePose points (DensePoseMapper).
        self.densepose_flip = None
        self.keypoint_flip_index = None if keypoint_flip_index is None else list(keypoint_flip_index)
        self.num_joints = num_joints
        self.image_format = image_format

    @classmethod
    def from_config(cls, cfg: CfgNode, is_train: bool) -> "DetectionMapper":
        """The mapper of detectron2's INPUT.* keys and MODEL.KEYPOINT_ON (COCO keypoints and flip map when on)."""
        sampling = _config_value(cfg, "INPUT.MIN_SIZE_TRAIN_SAMPLING")
        if sampling != "choice":
            raise ConfigError(f"INPUT.MIN_SIZE_TRAIN_SAMPLING: only 'choice' is available, got '{sampling}'")
        flip = _config_value(cfg, "INPUT.RANDOM_FLIP")
        if flip not in FLIP_MODES:
            raise ConfigError(f"INPUT.RANDOM_FLIP must be one of {', '.join(FLIP_MODES)}, got '{flip}'")
        keypoint_on = bool(_config_value(cfg, "MODEL.KEYPOINT_ON"))
        return cls(is_train, _config_value(cfg, "INPUT.MIN_SIZE_TRAIN"), _config_value(cfg, "INPUT.MAX_SIZE_TRAIN"),
                   _config_value(cfg, "INPUT.MIN_SIZE_TEST"), _config_value(cfg, "INPUT.MAX_SIZE_TEST"),
                   random_flip=flip == "horizontal",
                   keypoint_flip_index=COCO.flip_index if keypoint_on else None,
                   num_joints=COCO.num_joints if keypoint_on else None,
                   image_format=_config_value(cfg, "INPUT.FORMAT"))

    def __call__(self, record: dict, seed_sequence: Optional[np.random.SeedSequence]) -> Dict[str, Any]:
        """Read the record's image and map it; ``seed_sequence`` may be None at test time (nothing is drawn)."""
        return self.map_image(read_image(record["file_name"]), record, seed_sequence)

    def map_image(self, image: np.ndarray, record: dict,
                  seed_sequence: Optional[np.random.SeedSequence] = None) -> Dict[str, Any]:
        """Map an already decoded RGB uint8 (H, W, 3) image with its record (module docstring)."""
        height, width = self._check_size(image, record)
        if self.is_train and seed_sequence is None:
            raise ValueError("training items need a seed sequence for their random draws")
        rng = np.random.default_rng(seed_sequence) if self.is_train else None
        annotations = [self._detector_fields(ann, record) for ann in record.get("annotations", [])]
        instances = self._instances(annotations, (height, width))
        image, instances = self._augment(image, instances, rng)
        instances = _as_detectron2_leaves_them(instances)
        if self.image_format == "BGR":
            image = image[:, :, ::-1]
        return {"image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))), "instances": instances,
                "height": height, "width": width, "image_id": record.get("image_id"),
                "file_name": record.get("file_name")}

    def _instances(self, annotations: Sequence[dict], image_size: Tuple[int, int]) -> Instances:
        """One image's ground truth from its annotations' detector fields (families add theirs, e.g. LCR-Net)."""
        return annotations_to_instances(annotations, image_size, self.num_joints)

    @staticmethod
    def _check_size(image: np.ndarray, record: dict) -> Tuple[int, int]:
        """(height, width) of the decoded image, which must be the record's (detectron2's check_image_size)."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise DataError(f"{record.get('file_name')}: expected an RGB uint8 (H, W, 3) image, got "
                            f"{image.dtype} {image.shape}")
        height, width = image.shape[:2]
        expected = (record.get("height", height), record.get("width", width))
        if (height, width) != expected:
            raise DataError(f"{record.get('file_name')}: the image is {height}x{width} (height x width) but its "
                            f"record says {expected[0]}x{expected[1]}")
        return height, width

    def _detector_fields(self, ann: dict, record: dict) -> dict:
        """The fields the detector trains on, category_id turned into the contiguous class."""
        fields = DETECTOR_FIELDS + (("keypoints",) if self.num_joints is not None else ())
        kept = {field: ann[field] for field in fields if field in ann}
        if "category_id" in kept and not ann.get("iscrowd", 0):
            if kept["category_id"] not in CLASS_OF_CATEGORY:
                raise DataError(f"{record.get('file_name')}: annotation {ann.get('id', '?')} has category_id "
                                f"{kept['category_id']}; the person detector knows only "
                                f"{sorted(CLASS_OF_CATEGORY)} (person)")
            kept["category_id"] = CLASS_OF_CATEGORY[kept["category_id"]]
        return kept

    def _augment(self, image: np.ndarray, instances: Instances,
                 rng: Optional[np.random.Generator]) -> Tuple[np.ndarray, Instances]:
        """ResizeShortestEdge (short side drawn in training), then the training flip."""
        short_side = self.min_size_train[rng.integers(len(self.min_size_train))] if self.is_train \
            else self.min_size_test
        if short_side:
            image, instances = self._resize(image, instances, short_side)
        if self.is_train and self.random_flip:
            image, instances = random_flip(image, instances, FLIP_PROBABILITY, rng, self.keypoint_flip_index,
                                           self.densepose_flip)
        return image, instances

    def _resize(self, image: np.ndarray, instances: Instances, short_side: int) -> Tuple[np.ndarray, Instances]:
        """ResizeShortestEdge to ``short_side`` with the mode's long-side cap."""
        max_size = self.max_size_train if self.is_train else self.max_size_test
        new_height, new_width = resize_shortest_edge_size(*image.shape[:2], short_side, max_size)
        # Pillow's filter (antialiased when shrinking) is the one detectron2 trained with, not OpenCV's.
        return pil_resize(image, new_height, new_width), resize_instances(instances, new_height, new_width)
