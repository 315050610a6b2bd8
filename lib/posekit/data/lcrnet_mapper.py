"""LCR-Net's DatasetMapper: the detection mapper whose instances also carry ``gt_poses`` (lcrnet.md 3.1, 5.3, 9).

Each non-crowd annotation's ``pose`` (5J numbers: 2D in pixels, 3D in metres, torso-centred, LCR frame)
becomes a float64 row of ``gt_poses`` (N, 5J). Images and boxes are resized and flipped as the detector's
(Pillow bilinear, short side drawn from INPUT.MIN_SIZE_TRAIN, then the flip, in detectron2's draw order);
the poses' 2D moves with them, and the flip is the correct one of lcrnet.md 9 (``codec.flip_poses``: x ->
W - x as the boxes, X -> -X, left and right joints swapped), which the public trainer lacked. The release
trained without flipping (``USE_FLIPPED False``): INPUT.RANDOM_FLIP "none" reproduces it.

The 5J layout is known only to ``posekit.models.lcrnet.codec``, above this layer: the caller hands the mapper
its pose functions as ``PoseTransforms`` (``posekit.models.lcrnet.POSE_TRANSFORMS``).
"""
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from yacs.config import CfgNode

from ..structures import Instances
from ..utils.errors import DataError
from .detection_mapper import FLIP_PROBABILITY, DetectionMapper
from .instance_transforms import horizontal_flip

POSE_FIELD = "pose"


@dataclass(frozen=True)
class PoseTransforms:
    """How (N, 5J) pixel poses follow their image: ``scale_2d(poses, (sx, sy))`` and ``flip(poses, width)``."""

    scale_2d: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    flip: Callable[[torch.Tensor, float], torch.Tensor]


class LCRNetMapper(DetectionMapper):
    """The detection mapper's input dict whose instances also carry ``gt_poses`` (module docstring)."""

    def __init__(self, is_train: bool, min_size_train: Union[int, Sequence[int]], max_size_train: int,
                 min_size_test: int, max_size_test: int, random_flip: bool, num_joints: int,
                 pose_transforms: PoseTransforms, **detection_options: Any) -> None:
        # The detector's own flip would move the boxes and not the poses: this mapper flips both.
        super().__init__(is_train, min_size_train, max_size_train, min_size_test, max_size_test, False,
                         **detection_options)
        self.flip_poses = random_flip
        self.pose_size = 5 * num_joints
        self.pose_transforms = pose_transforms

    @classmethod
    def from_config(cls, cfg: CfgNode, is_train: bool, pose_transforms: PoseTransforms) -> "LCRNetMapper":
        """The detection mapper's INPUT.* keys and MODEL.LCRNET.NUM_JOINTS."""
        detection = DetectionMapper.from_config(cfg, is_train)
        return cls(is_train, detection.min_size_train, detection.max_size_train, detection.min_size_test,
                   detection.max_size_test, detection.random_flip, cfg.MODEL.LCRNET.NUM_JOINTS, pose_transforms,
                   image_format=detection.image_format)

    def _detector_fields(self, ann: dict, record: dict) -> dict:
        """The detector's fields plus ``pose`` (checked to hold 5J numbers)."""
        kept = super()._detector_fields(ann, record)
        if not ann.get("iscrowd", 0):
            pose = ann.get(POSE_FIELD)
            if not isinstance(pose, (list, tuple)) or len(pose) != self.pose_size:
                found = f"{len(pose)} numbers" if isinstance(pose, (list, tuple)) else repr(type(pose).__name__)
                raise DataError(f"{record.get('file_name')}: annotation {ann.get('id', '?')}: field '{POSE_FIELD}' "
                                f"must hold {self.pose_size} numbers (5J, J = {self.pose_size // 5}), got {found}")
            kept[POSE_FIELD] = pose
        return kept

    def _instances(self, annotations: Sequence[dict], image_size: Tuple[int, int]) -> Instances:
        """The detector's instances plus ``gt_poses`` (N, 5J) float64 of the non-crowd annotations."""
        instances = super()._instances(annotations, image_size)
        poses = [ann[POSE_FIELD] for ann in annotations if not ann.get("iscrowd", 0)]
        instances.gt_poses = torch.tensor(poses, dtype=torch.float64).reshape(-1, self.pose_size)
        return instances

    def _augment(self, image: np.ndarray, instances: Instances,
                 rng: Optional[np.random.Generator]) -> Tuple[np.ndarray, Instances]:
        """The detector's resize (poses' 2D scaled with the boxes), then the training flip of boxes and poses."""
        height, width = image.shape[:2]
        image, instances = super()._augment(image, instances, rng)
        scale = torch.tensor([image.shape[1] / width, image.shape[0] / height], dtype=torch.float64)
        instances.gt_poses = self.pose_transforms.scale_2d(instances.gt_poses, scale)
        if self.is_train and self.flip_poses and rng.random() < FLIP_PROBABILITY:
            image, instances = horizontal_flip(image, instances, None)
            instances.gt_poses = self.pose_transforms.flip(instances.gt_poses, image.shape[1])
        return image, instances

