"""LCR-Net's DatasetMapper: the detection mapper whose instances also carry ``gt_poses`` (lcrnet.md 3.1, 5.3, 9).

Each non-crowd annotation's ``pose`` (5J numbers: 2D in pixels, 3D in metres, torso-centred, LCR frame)
becomes a float64 row of ``gt_poses`` (N, 5J). Images are resized as Detectron's ``prep_im_for_blob`` (one
scale factor, short side to INPUT.MIN_SIZE_*, capped so the rounded long side stays within INPUT.MAX_SIZE_*,
OpenCV INTER_LINEAR: the pixels the released models saw) or, with INPUT.RESIZE_LIBRARY "pil", as the
detector's; boxes and the poses' 2D follow. Then the training flip (detectron2's draw order: short side, flip)
mirrors boxes and poses as lcrnet.md 9 says (``codec.flip_poses``: x -> W - x as the boxes, X -> -X, left and
right joints swapped), which the public trainer could not do. The release
trained without flipping (``USE_FLIPPED False``): INPUT.RANDOM_FLIP "none" reproduces it.

The 5J layout is known only to ``posekit.models.lcrnet.codec``, above this layer: the caller hands the mapper
its pose functions as ``PoseTransforms`` (``posekit.models.lcrnet.POSE_TRANSFORMS``).
"""
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from yacs.config import CfgNode

from ..config.lcrnet import RESIZE_LIBRARIES
from ..structures import Instances
from ..utils.errors import ConfigError, DataError
from .detection_mapper import FLIP_PROBABILITY, DetectionMapper
from .instance_transforms import horizontal_flip, resize_instances

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
                 pose_transforms: PoseTransforms, opencv_resize: bool = True, **detection_options: Any) -> None:
        # The detector's own flip would move the boxes and not the poses: this mapper flips both.
        super().__init__(is_train, min_size_train, max_size_train, min_size_test, max_size_test, False,
                         **detection_options)
        self.flip_poses = random_flip
        self.pose_size = 5 * num_joints
        self.pose_transforms = pose_transforms
        self.opencv_resize = opencv_resize

    @classmethod
    def from_config(cls, cfg: CfgNode, is_train: bool, pose_transforms: PoseTransforms) -> "LCRNetMapper":
        """The detection mapper's INPUT.* keys, INPUT.RESIZE_LIBRARY and MODEL.LCRNET.NUM_JOINTS."""
        detection = DetectionMapper.from_config(cfg, is_train)
        if cfg.INPUT.RESIZE_LIBRARY not in RESIZE_LIBRARIES:
            raise ConfigError(f"INPUT.RESIZE_LIBRARY must be one of {', '.join(RESIZE_LIBRARIES)}, got "
                              f"'{cfg.INPUT.RESIZE_LIBRARY}'")
        return cls(is_train, detection.min_size_train, detection.max_size_train, detection.min_size_test,
                   detection.max_size_test, detection.random_flip, cfg.MODEL.LCRNET.NUM_JOINTS, pose_transforms,
                   opencv_resize=cfg.INPUT.RESIZE_LIBRARY == "opencv", image_format=detection.image_format)

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
        instances.gt_poses = torch.tensor(poses, dtype=torch.float64).reshape(len(poses), self.pose_size)
        return instances

    def _resize(self, image: np.ndarray, instances: Instances, short_side: int) -> Tuple[np.ndarray, Instances]:
        """Detectron's resize (module docstring), or the detector's with INPUT.RESIZE_LIBRARY "pil"."""
        if not self.opencv_resize:
            return super()._resize(image, instances, short_side)
        max_size = self.max_size_train if self.is_train else self.max_size_test
        scale = detectron_scale(*image.shape[:2], short_side, max_size)
        resized = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        return resized, resize_instances(instances, *resized.shape[:2])

    def _augment(self, image: np.ndarray, instances: Instances,
                 rng: Optional[np.random.Generator]) -> Tuple[np.ndarray, Instances]:
        """The resize (poses' 2D scaled with the boxes), then the training flip of boxes and poses."""
        height, width = image.shape[:2]
        image, instances = super()._augment(image, instances, rng)
        scale = torch.tensor([image.shape[1] / width, image.shape[0] / height], dtype=torch.float64)
        instances.gt_poses = self.pose_transforms.scale_2d(instances.gt_poses, scale)
        if self.is_train and self.flip_poses and rng.random() < FLIP_PROBABILITY:
            image, instances = horizontal_flip(image, instances, None)
            instances.gt_poses = self.pose_transforms.flip(instances.gt_poses, image.shape[1])
        return image, instances


def detectron_scale(height: int, width: int, short: int, max_size: int) -> float:
    """Detectron's image scale: short / min(H, W), or max_size / max(H, W) when the long side would round above
    max_size."""
    scale = short / min(height, width)
    if round(scale * max(height, width)) > max_size:
        scale = max_size / max(height, width)
    return scale
