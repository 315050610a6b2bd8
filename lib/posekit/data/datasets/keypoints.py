"""COCO-style keypoint splits: DEKR's training records and mapper (augmentation, targets) and the test images."""
import os
import random
from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from ...utils.errors import DataError
from ..annotations import keypoint_array, load_keypoint_file
from ..catalog import image_path
from ..image_io import read_rgb
from ..mapped_dataset import MappedDataset
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
        return image_path(self.image_source, file_name, self.zipped)


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


def keypoint_records(layout: DatasetLayout, keypoint_set: KeypointSet) -> List[dict]:
    """Catalog-style records (file_name, image_id, annotations) of the layout's images that have annotations.

    Official DEKR trains on every image with at least one annotation, crowd or not.
    """
    keypoint_file = load_keypoint_file(layout.annotation_file, keypoint_set.num_joints, _annotation_fields(layout),
                                       layout.masks_from_segments)
    by_image = keypoint_file.annotations_by_image
    return [{"file_name": layout.image_path(image["file_name"]), "image_id": image["id"],
             "annotations": by_image[image["id"]]}
            for image in keypoint_file.images if by_image.get(image["id"])]


class DekrMapper:
    """A record -> DEKR's training item: dicts of "image" (3xSxS uint8 RGB), "heatmap", "mask" ((K+1)xRxR),
    "offset" and "offset_weight" (2KxRxR), with the official augmentation drawn from the item's seeds."""

    def __init__(self, layout: DatasetLayout, keypoint_set: KeypointSet, dataset_cfg) -> None:
        self.layout = layout
        self.num_joints = keypoint_set.num_joints
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

    @staticmethod
    def generators(seed_sequence: np.random.SeedSequence) -> Tuple[np.random.RandomState, random.Random]:
        """The NumPy (affine) and Python (flip) generators of one item."""
        numpy_seed, python_seed = seed_sequence.generate_state(2)
        return np.random.RandomState(numpy_seed), random.Random(int(python_seed))

    def persons(self, annotations: List[dict]) -> Tuple[np.ndarray, np.ndarray]:
        """(P, K+1, 3) joints with centre rows and (P,) areas of the annotations that train (dekr.md 6.2)."""
        kept = [ann for ann in annotations if not ann["iscrowd"] or ann["num_keypoints"] > 0]
        keypoints = np.stack([keypoint_array(ann, self.num_joints) for ann in kept]) if kept else \
            np.zeros((0, self.num_joints, 3))
        centre_allowed = np.array([not (self.layout.small_person_rule and ann["area"] < SMALL_PERSON_SEGMENT_AREA)
                                   for ann in kept], bool)
        joints = np.concatenate([keypoints, person_centres(keypoints, centre_allowed)[:, None]], axis=1)
        return joints, labelled_extent_areas(keypoints)

    def __call__(self, record: dict, seed_sequence: np.random.SeedSequence) -> Dict[str, torch.Tensor]:
        annotations = record["annotations"]
        image = read_rgb(record["file_name"])
        height, width = image.shape[:2]
        if self.layout.masks_from_segments:
            mask = loss_mask(annotations, height, width, self.layout.annotation_file)
        else:
            mask = np.ones((height, width), bool)
        joints, areas = self.persons(annotations)
        numpy_rng, python_rng = self.generators(seed_sequence)
        image, mask, joints, areas = self.affine(image, mask, joints, areas, numpy_rng)
        image, mask, joints = self.flip(image, mask, joints, python_rng)
        heatmap, heatmap_weight = heatmap_targets(joints, self.output_size, self.sigma, self.center_sigma,
                                                  self.bg_weight)
        offset, offset_weight = offset_targets(joints, areas, self.output_size, self.offset_radius)
        return {"image": to_chw_tensor(image), "heatmap": torch.from_numpy(heatmap),
                "mask": torch.from_numpy(heatmap_weight * mask[None].astype(np.float32)),
                "offset": torch.from_numpy(offset), "offset_weight": torch.from_numpy(offset_weight)}


def dekr_train_dataset(layout: DatasetLayout, keypoint_set: KeypointSet, dataset_cfg, seed: int) -> MappedDataset:
    """DEKR's training set of one split: its records through ``DekrMapper``, seeded by ``seed``."""
    return MappedDataset(keypoint_records(layout, keypoint_set), DekrMapper(layout, keypoint_set, dataset_cfg), seed)


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
