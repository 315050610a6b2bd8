"""DensePose R-CNN's DatasetMapper: the detection mapper (densepose.md §1.4) that also carries ``gt_densepose``.

Each instance's DensePose annotation (a ``DensePosePoints``, None for a person without the six dp fields,
§5.1) rides along: its points are box-relative, so a resize leaves them as they are, and the training flip
mirrors them as §5.3 says (x -> 256 - x, charts and coarse parts swapped, U and V through the per-chart tables
of ``UV_symmetry_transforms.mat``). Boxes are clipped to the image as for the detector while the points keep
their frame, as detectron2's DensePose mapper leaves them.

The symmetry file is the config's ``DENSEPOSE_DATA.UV_SYMMETRY_FILE`` (default
``data/densepose/UV_symmetry_transforms.mat``); only a training mapper that flips reads it.
"""
import os
from typing import Any, Optional, Sequence, Union

from yacs.config import CfgNode

from ..utils.errors import ConfigError, DataError
from .catalog import DENSEPOSE_FIELDS
from .detection_mapper import DetectionMapper
from .instance_transforms import DensePoseFlip

UV_SYMMETRY_KEY = "DENSEPOSE_DATA.UV_SYMMETRY_FILE"


def load_densepose_flip(path: str) -> DensePoseFlip:
    """The flip tables of ``path``; a missing file is a DataError saying where it goes and how to flip without it."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: UV symmetry file not found; training flips DensePose annotations with it "
                        f"(densepose.md §5.3). Download UV_symmetry_transforms.mat from the DensePose release "
                        f"(densepose/data/) to that path or set {UV_SYMMETRY_KEY}, or turn flipping off with "
                        f"INPUT.RANDOM_FLIP none")
    return DensePoseFlip.from_mat(path)


class DensePoseMapper(DetectionMapper):
    """The detection mapper's input dict whose instances also carry ``gt_densepose`` (module docstring)."""

    def __init__(self, is_train: bool, min_size_train: Union[int, Sequence[int]], max_size_train: int,
                 min_size_test: int, max_size_test: int, random_flip: bool,
                 densepose_flip: Optional[DensePoseFlip] = None, **detection_options: Any) -> None:
        super().__init__(is_train, min_size_train, max_size_train, min_size_test, max_size_test, random_flip,
                         **detection_options)
        if is_train and random_flip and densepose_flip is None:
            raise ConfigError("a DensePose training mapper that flips needs the UV symmetry tables "
                              "(densepose_flip, from UV_symmetry_transforms.mat); or set INPUT.RANDOM_FLIP none")
        self.densepose_flip = densepose_flip

    @classmethod
    def from_config(cls, cfg: CfgNode, is_train: bool) -> "DensePoseMapper":
        """The detection mapper's keys; a training mapper that flips also loads the UV symmetry file."""
        detection = DetectionMapper.from_config(cfg, is_train)
        flips = is_train and detection.random_flip
        return cls(is_train, detection.min_size_train, detection.max_size_train, detection.min_size_test,
                   detection.max_size_test, detection.random_flip,
                   densepose_flip=load_densepose_flip(cfg.DENSEPOSE_DATA.UV_SYMMETRY_FILE) if flips else None,
                   keypoint_flip_index=detection.keypoint_flip_index, num_joints=detection.num_joints,
                   image_format=detection.image_format)

    def _detector_fields(self, ann: dict, record: dict) -> dict:
        """The detector's fields plus the six dp fields when the annotation has them."""
        kept = super()._detector_fields(ann, record)
        kept.update({field: ann[field] for field in DENSEPOSE_FIELDS if field in ann})
        return kept
