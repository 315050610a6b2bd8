"""Data-set-independent readers: the DEKR training set (augmented, with targets) and the test-time image set."""
import os
import random
from dataclasses import dataclass
from typing import Callable, List, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from ...utils.errors import DataError
from ..annotations import keypoint_array, load_keypoint_file
from ..image_io import read_rgb
from ..metadata import KeypointSet
from ..targets.dekr import (SMALL_PERSON_SEGMENT_AREA, heatmap_targets, labelled_extent_areas, loss_mask,
                            offset_targets, person_centres)
from ..transforms import RandomAffine, RandomHorizontalFlip, to_chw_tensor


@dataclass(frozen=True)
class DatasetLayout:
    """Where one split lives on disk and the few rules in which data sets differ."""

    annotation_file: str
    image_source: str  # a folder, or a zip archive when ``zipped``
    zipped: bool
    masks_from_segments: bool  # COCO: crowd and unlabelled persons' segments leave the heatmap loss
    small_person_rule: bool  # COCO: no centre for persons whose segment area is below 32^2
    results_image_id: Callable[[str], int]  # image file name -> image_id in results files

    def image_path(self, file_name: str) -> str:
        """Path (or ``archive.zip@member``) of one image."""
        return f"{self.image_source}@{file_name}" if self.zipped else os.path.join(self.image_source, file_name)


def image_source(zip_path: str, folder: str, data_format: str) -> Tuple[str, bool]:
    """(source, zipped): the zip when DATA_FORMAT is zip and it exists, else the folder, which must exist."""
    if data_format == "zip" and os.path.isfile(zip_path):
        return zip_path, True
    if os.path.isdir(folder):
        return folder, False
    wanted = f"{zip_path} or {folder}" if data_format == "zip" else folder
    raise DataError(f"image folder not found: {wanted} (check DATASET.ROOT and DATASET.DATA_FORMAT)")


def _annotation_fields(layout: DatasetLayout) -> Tuple[str, ...]:
    return ("area",) if layout.small_person_rule else ()


class DekrTrainDataset(Dataset):
    """DEKR training items: dicts of "image" (3xSxS uint8 RGB), "heatmap", "mask" ((K+1)xRxR), "offset" and
    "offset_weight" (2KxRxR).

    Augmentation draws come from generators seeded by (seed, epoch, index): call ``set_epoch`` before each
    epoch; worker count, worker seeding and resume points then do not change any sample.
    """

    def __init__(self, layout: DatasetLayout, keypoint_set: KeypointSet, dataset_cfg, seed: int) -> None:
        self.layout = layout
        self.keypoint_set = keypoint_set
        self.num_joints = keypoint_set.num_joints
        keypoint_file = load_keypoint_file(layout.annotation_file, self.num_joints, _annotation_fields(layout),
                                           layout.masks_from_segments)
        self.annotations = keypoint_file.annotations_by_image
        # Official: keep images with at least one annotation, crowd or not.
        self.images = [image for image in keypoint_file.images if self.annotations.get(image["id"])]
        self.affine = RandomAffine(dataset_cfg.INPUT_SIZE, dataset_cfg.OUTPUT_SIZE, dataset_cfg.MAX_ROTATION,
                                   dataset_cfg.MIN_SCALE, dataset_cfg.MAX_SCALE, dataset_cfg.SCALE_TYPE,
                                   dataset_cfg.MAX_TRANSLATE)
        self.flip = RandomHorizontalFlip(keypoint_set.flip_index_with_center, dataset_cfg.OUTPUT_SIZE,
                                         dataset_cfg.FLIP)
        self.output_size = dataset_cfg.OUTPUT_SIZE
        self.sigma = dataset_cfg.SIGMA
        self.center_sigma = dataset_cfg.CENTER_SIGMA
        self.bg_weight = dataset_cfg.BG_WEIGHT
        self.offset_radius = dataset_cfg.OFFSET_RADIUS
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.images)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentation draws the next items use."""
        self.epoch = epoch

    def generators(self, index: int) -> Tuple[np.random.RandomState, random.Random]:
        """The NumPy (affine) and Python (flip) generators of item ``index`` in the current epoch."""
        numpy_seed, python_seed = np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(2)
        return np.random.RandomState(numpy_seed), random.Random(int(python_seed))

    def persons(self, annotations: List[dict]) -> Tuple[np.ndarray, np.ndarray]:
        """(P, K+1, 3) joints with centre rows and (P,) areas of the annotations that train (spec 6.2)."""
        kept = [ann for ann in annotations if not ann["iscrowd"] or ann["num_keypoints"] > 0]
        keypoints = np.stack([keypoint_array(ann, self.num_joints) for ann in kept]) if kept else \
            np.zeros((0, self.num_joints, 3))
        centre_allowed = np.array([not (self.layout.small_person_rule and ann["area"] < SMALL_PERSON_SEGMENT_AREA)
                                   for ann in kept], bool)
        joints = np.concatenate([keypoints, person_centres(keypoints, centre_allowed)[:, None]], axis=1)
        return joints, labelled_extent_areas(keypoints)

    def __getitem__(self, index: int):
        info = self.images[index]
        annotations = self.annotations[info["id"]]
        image = read_rgb(self.layout.image_path(info["file_name"]))
        height, width = image.shape[:2]
        if self.layout.masks_from_segments:
            mask = loss_mask(annotations, height, width, self.layout.annotation_file)
        else:
            mask = np.ones((height, width), bool)
        joints, areas = self.persons(annotations)
        numpy_rng, python_rng = self.generators(index)
        image, mask, joints, areas = self.affine(image, mask, joints, areas, numpy_rng)
        image, mask, joints = self.flip(image, mask, joints, python_rng)
        heatmap, heatmap_weight = heatmap_targets(joints, self.output_size, self.sigma, self.center_sigma,
                                                  self.bg_weight)
        offset, offset_weight = offset_targets(joints, areas, self.output_size, self.offset_radius)
        return {"image": to_chw_tensor(image), "heatmap": torch.from_numpy(heatmap),
                "mask": torch.from_numpy(heatmap_weight * mask[None].astype(np.float32)),
                "offset": torch.from_numpy(offset), "offset_weight": torch.from_numpy(offset_weight)}


class KeypointTestDataset(Dataset):
    """Test images in file order as ``(image_id, RGB uint8 HxWx3)``; image_id follows the results-file rule."""

    def __init__(self, layout: DatasetLayout, keypoint_set: KeypointSet) -> None:
        self.layout = layout
        keypoint_file = load_keypoint_file(layout.annotation_file, keypoint_set.num_joints,
                                           _annotation_fields(layout))
        self.images = keypoint_file.images
        self.has_annotations = keypoint_file.has_annotations

    @property
    def gt_json(self) -> str:
        """The ground-truth (or image-info) json file of this split."""
        return self.layout.annotation_file

    def results_image_id(self, file_name: str) -> int:
        """The image_id a results file uses for the image called ``file_name``."""
        return self.layout.results_image_id(file_name)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Tuple[int, np.ndarray]:
        file_name = self.images[index]["file_name"]
        return self.results_image_id(file_name), read_rgb(self.layout.image_path(file_name))
